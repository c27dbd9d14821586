-- HAVING over a NULL key group
SELECT k, COUNT(s) AS cs FROM jevents GROUP BY k HAVING COUNT(*) >= 20
