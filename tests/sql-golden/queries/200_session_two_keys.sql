-- SESSION per two nullable keys
SELECT k, b, window_start, window_end, COUNT(*) AS c, MAX(i) AS mi FROM TABLE(SESSION(TABLE jevents PARTITION BY (k, b), DESCRIPTOR(ts), INTERVAL '30' SECOND)) GROUP BY k, b, window_start, window_end
