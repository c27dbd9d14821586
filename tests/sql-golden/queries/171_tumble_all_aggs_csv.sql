-- every aggregate per TUMBLE window
SELECT window_start, window_end, COUNT(*) AS c, SUM(k) AS sk, SUM(i) AS si, SUM(x) AS sx, MIN(i) AS mini, MAX(i) AS maxi, MIN(x) AS minx, MAX(x) AS maxx, AVG(i) AS avgi, AVG(x) AS avgx, MIN(s) AS mins, MAX(s) AS maxs, MIN(ts) AS mints, MAX(ts) AS maxts FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
