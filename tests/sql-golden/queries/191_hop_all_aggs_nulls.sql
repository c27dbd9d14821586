-- every aggregate per HOP window over NULLs
SELECT window_start, window_end, COUNT(*) AS c, COUNT(x) AS cx, SUM(i) AS si, MIN(x) AS minx, MAX(x) AS maxx, AVG(x) AS avgx, MIN(s) AS mins, MAX(s) AS maxs FROM TABLE(HOP(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '3' MINUTE)) GROUP BY window_start, window_end
