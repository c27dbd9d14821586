-- SESSION without PARTITION BY (one session over all keys)
SELECT window_start, window_end, COUNT(*) AS c FROM TABLE(SESSION(TABLE lhs, DESCRIPTOR(ts), INTERVAL '8' SECOND)) GROUP BY window_start, window_end
