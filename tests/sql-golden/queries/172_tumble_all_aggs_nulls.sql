-- every aggregate per TUMBLE window over NULLs
SELECT window_start, window_end, COUNT(*) AS c, COUNT(k) AS ck, COUNT(x) AS cx, COUNT(s) AS cs, COUNT(b) AS cb, SUM(i) AS si, SUM(x) AS sx, MIN(x) AS minx, MAX(x) AS maxx, AVG(k) AS avgk, AVG(x) AS avgx, MIN(s) AS mins, MAX(s) AS maxs FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
