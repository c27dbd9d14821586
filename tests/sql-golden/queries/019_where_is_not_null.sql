-- IS NOT NULL on two columns
SELECT k, x, s FROM jevents WHERE s IS NOT NULL AND x IS NOT NULL AND k = 2
