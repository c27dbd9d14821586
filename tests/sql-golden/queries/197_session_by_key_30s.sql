-- SESSION per key, 30 s gap, MIN/MAX
SELECT k, window_start, window_end, COUNT(*) AS c, MIN(ts) AS first_ts, MAX(ts) AS last_ts, MAX(s) AS ms FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '30' SECOND)) GROUP BY k, window_start, window_end
