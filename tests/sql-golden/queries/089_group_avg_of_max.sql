-- AVG over MAX per (k, b) grouped by b (Nexmark q4 shape)
SELECT b, AVG(mx) AS avg_max, COUNT(*) AS n FROM (SELECT k, b, MAX(x) AS mx FROM events GROUP BY k, b) GROUP BY b
