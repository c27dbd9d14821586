-- CUMULATE window
SELECT window_start, window_end, COUNT(*) AS c FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '20' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
