-- three-way join
SELECT l.id AS lid, r.id AS rid, e.i FROM lhs l JOIN rhs r ON l.k = r.k JOIN events e ON e.k = l.k WHERE e.i > 95
