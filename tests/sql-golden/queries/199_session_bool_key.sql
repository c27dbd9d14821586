-- SESSION per BOOLEAN key
SELECT b, window_start, window_end, COUNT(*) AS c FROM TABLE(SESSION(TABLE events PARTITION BY b, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY b, window_start, window_end
