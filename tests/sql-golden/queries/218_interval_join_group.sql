-- interval join then GROUP BY
SELECT l.k, COUNT(*) AS c, SUM(l.n) AS sum_n, MAX(r.amount) AS max_amount FROM lhs l JOIN rhs r ON l.k = r.k AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '30' SECOND GROUP BY l.k
