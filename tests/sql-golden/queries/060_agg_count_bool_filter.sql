-- COUNT of a BOOLEAN and conditional counts
SELECT COUNT(b) AS cb, SUM(CASE WHEN b THEN 1 ELSE 0 END) AS n_true, COUNT(CASE WHEN NOT b THEN 1 END) AS n_false FROM jevents
