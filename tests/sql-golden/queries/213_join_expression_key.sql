-- join on expressions
SELECT l.id AS lid, r.id AS rid FROM lhs l JOIN rhs r ON l.k + 1 = r.k
