-- HOP 10 s slide, 30 s size, late rows
SELECT window_start, window_end, COUNT(*) AS c, MAX(x) AS mx FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '30' SECOND)) GROUP BY window_start, window_end
