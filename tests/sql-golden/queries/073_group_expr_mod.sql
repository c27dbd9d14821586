-- group by an expression (MOD of negatives)
SELECT MOD(i, 3) AS m, COUNT(*) AS c, SUM(x) AS sx FROM events GROUP BY MOD(i, 3)
