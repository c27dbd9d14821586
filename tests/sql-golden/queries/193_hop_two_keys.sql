-- HOP per two nullable keys
SELECT k, b, window_start, window_end, COUNT(*) AS c, SUM(x) AS sx FROM TABLE(HOP(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)) GROUP BY k, b, window_start, window_end
