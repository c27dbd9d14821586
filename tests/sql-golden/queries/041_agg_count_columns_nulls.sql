-- COUNT(col) of every type skips NULLs
SELECT COUNT(*) AS c_all, COUNT(k) AS c_k, COUNT(i) AS c_i, COUNT(x) AS c_x, COUNT(s) AS c_s, COUNT(b) AS c_b FROM jevents
