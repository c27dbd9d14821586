-- OVER on the join table rhs
SELECT k, ts, amount, SUM(amount) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s2 FROM rhs
