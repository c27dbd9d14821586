-- GREATEST and LEAST (NULL if any argument is)
SELECT k, i, GREATEST(i, 10, CAST(k AS INT)) AS g, LEAST(x, 0.0) AS l FROM jevents WHERE k BETWEEN -10 AND 10
