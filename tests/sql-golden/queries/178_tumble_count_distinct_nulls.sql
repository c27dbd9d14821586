-- COUNT(DISTINCT) of a nullable column per window
SELECT window_start, window_end, COUNT(DISTINCT k) AS dk FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '2' MINUTE)) GROUP BY window_start, window_end
