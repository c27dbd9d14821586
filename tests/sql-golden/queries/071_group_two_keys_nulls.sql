-- two nullable keys
SELECT k, b, COUNT(*) AS c, MAX(s) AS max_s FROM jevents GROUP BY k, b
