-- MIN/MAX TIMESTAMP per key
SELECT k, MIN(ts) AS min_ts, MAX(ts) AS max_ts FROM jevents GROUP BY k
