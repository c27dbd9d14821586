-- TUMBLE per two keys
SELECT k, b, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '2' MINUTE)) GROUP BY k, b, window_start, window_end
