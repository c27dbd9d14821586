-- window_end of sessions with a HAVING
SELECT k, window_end, COUNT(*) AS c FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '15' SECOND)) GROUP BY k, window_start, window_end HAVING COUNT(*) > 2
