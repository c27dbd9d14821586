-- BOOLEAN key with NULLs
SELECT b, COUNT(*) AS c, SUM(x) AS sx FROM jevents GROUP BY b
