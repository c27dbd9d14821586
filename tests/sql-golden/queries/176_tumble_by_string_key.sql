-- TUMBLE per VARCHAR key
SELECT s, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' MINUTE)) GROUP BY s, window_start, window_end
