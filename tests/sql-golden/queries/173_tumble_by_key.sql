-- TUMBLE per BIGINT key
SELECT k, window_start, window_end, COUNT(*) AS c, SUM(x) AS sx FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '30' SECOND)) GROUP BY k, window_start, window_end
