-- every aggregate per key
SELECT k, COUNT(*) AS c, SUM(i) AS si, MIN(i) AS mini, MAX(i) AS maxi, AVG(i) AS avgi, SUM(x) AS sx, MIN(x) AS minx, MAX(x) AS maxx, AVG(x) AS avgx FROM events GROUP BY k
