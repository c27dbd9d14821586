-- IS NOT DISTINCT FROM joins NULL keys
SELECT l.id AS lid, r.id AS rid, l.k AS lk, r.k AS rk FROM lhs l JOIN rhs r ON l.k IS NOT DISTINCT FROM r.k
