-- WHERE before GROUP BY
SELECT k, COUNT(*) AS c, AVG(x) AS ax FROM events WHERE x > 0 GROUP BY k
