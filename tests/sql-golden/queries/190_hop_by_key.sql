-- HOP per key
SELECT k, window_start, window_end, COUNT(*) AS c, SUM(i) AS si FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '20' SECOND, INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end
