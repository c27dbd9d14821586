-- HOP 30 s slide, 1 minute size
SELECT window_start, window_end, COUNT(*) AS c FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
