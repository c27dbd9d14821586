-- MIN/MAX TIMESTAMP with NULL timestamps
SELECT b, MIN(ts) AS min_ts, MAX(ts) AS max_ts, COUNT(ts) AS c_ts FROM jplain GROUP BY b
