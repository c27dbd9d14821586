-- MIN/MAX of BIGINT, INT, DOUBLE, VARCHAR with NULLs
SELECT MIN(k) AS min_k, MAX(k) AS max_k, MIN(i) AS min_i, MAX(i) AS max_i, MIN(x) AS min_x, MAX(x) AS max_x, MIN(s) AS min_s, MAX(s) AS max_s FROM jevents
