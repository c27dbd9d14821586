-- IF(cond, a, b) with a NULL condition
SELECT k, b, IF(b, 'yes', 'no') AS yn, IF(i > 50, i, -1) AS big_i FROM jevents WHERE k = 42
