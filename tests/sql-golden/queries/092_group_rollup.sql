-- ROLLUP
SELECT k, b, COUNT(*) AS c FROM events WHERE k IN (1, 2) GROUP BY ROLLUP (k, b)
