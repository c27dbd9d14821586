-- COUNT(DISTINCT) next to SUM and MAX
SELECT k, COUNT(DISTINCT i) AS di, SUM(i) AS si, MAX(x) AS mx FROM jevents GROUP BY k
