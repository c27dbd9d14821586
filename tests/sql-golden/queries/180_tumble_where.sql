-- WHERE before a window aggregate
SELECT window_start, window_end, COUNT(*) AS c, AVG(x) AS ax FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) WHERE b AND k > 0 GROUP BY window_start, window_end
