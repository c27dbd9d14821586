-- HOP per nullable key
SELECT k, window_start, window_end, COUNT(*) AS c FROM TABLE(HOP(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)) GROUP BY k, window_start, window_end
