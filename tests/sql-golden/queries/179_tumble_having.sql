-- HAVING on a window aggregate
SELECT k, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end HAVING COUNT(*) >= 5
