-- COUNT, MIN, MAX of a TIMESTAMP with NULLs
SELECT COUNT(*) AS c_all, COUNT(ts) AS c_ts, MIN(ts) AS min_ts, MAX(ts) AS max_ts FROM jplain
