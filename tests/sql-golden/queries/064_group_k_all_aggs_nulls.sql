-- every aggregate per key, NULL key group
SELECT k, COUNT(*) AS c, COUNT(i) AS ci, SUM(i) AS si, MIN(i) AS mini, MAX(i) AS maxi, AVG(i) AS avgi, SUM(x) AS sx, MIN(x) AS minx, MAX(x) AS maxx, AVG(x) AS avgx FROM jevents GROUP BY k
