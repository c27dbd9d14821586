-- SUM/MIN/AVG over only NULLs are NULL, COUNT is 0
SELECT COUNT(x) AS cx, SUM(x) AS sx, MIN(x) AS mx, AVG(x) AS ax, COUNT(*) AS c FROM jevents WHERE x IS NULL
