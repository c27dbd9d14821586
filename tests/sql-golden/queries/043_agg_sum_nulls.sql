-- SUM of BIGINT, INT, DOUBLE with NULLs
SELECT SUM(k) AS sum_k, SUM(i) AS sum_i, SUM(x) AS sum_x FROM jevents
