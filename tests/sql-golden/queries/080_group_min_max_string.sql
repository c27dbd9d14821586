-- MIN/MAX VARCHAR per key
SELECT k, MIN(s) AS min_s, MAX(s) AS max_s FROM events GROUP BY k
