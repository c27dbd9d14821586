-- HAVING on SUM: groups enter and leave the result
SELECT k, SUM(x) AS sx FROM events GROUP BY k HAVING SUM(x) > 0
