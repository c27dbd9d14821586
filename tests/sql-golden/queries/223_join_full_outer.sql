-- FULL OUTER JOIN
SELECT l.id AS lid, r.id AS rid, l.k AS lk, r.k AS rk FROM lhs l FULL OUTER JOIN rhs r ON l.k = r.k
