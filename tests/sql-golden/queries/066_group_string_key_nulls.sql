-- VARCHAR key: NULL and '' are different groups
SELECT s, COUNT(*) AS c, SUM(i) AS si FROM jevents GROUP BY s
