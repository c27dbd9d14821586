-- RIGHT JOIN
SELECT l.id AS lid, r.id AS rid, r.k FROM lhs l RIGHT JOIN rhs r ON l.k = r.k
