-- AVG of BIGINT, INT (integer result in Flink), DOUBLE with NULLs
SELECT AVG(k) AS avg_k, AVG(i) AS avg_i, AVG(x) AS avg_x FROM jevents
