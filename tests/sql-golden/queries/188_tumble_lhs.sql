-- TUMBLE over a table without late rows
SELECT window_start, window_end, COUNT(*) AS c, COUNT(k) AS ck, SUM(n) AS sn FROM TABLE(TUMBLE(TABLE lhs, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
