-- TUMBLE per nullable key
SELECT k, window_start, window_end, COUNT(*) AS c, MAX(i) AS mi FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end
