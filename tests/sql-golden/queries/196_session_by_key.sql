-- SESSION per key, 10 s gap
SELECT k, window_start, window_end, COUNT(*) AS c, SUM(i) AS si FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end
