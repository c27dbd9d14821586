-- COUNT(DISTINCT) per HOP window
SELECT window_start, window_end, COUNT(DISTINCT s) AS ds FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)) GROUP BY window_start, window_end
