-- SESSION per nullable key with NULL aggregates
SELECT k, window_start, window_end, COUNT(*) AS c, COUNT(x) AS cx, SUM(x) AS sx, AVG(i) AS ai FROM TABLE(SESSION(TABLE jevents PARTITION BY k, DESCRIPTOR(ts), INTERVAL '20' SECOND)) GROUP BY k, window_start, window_end
