-- a join without an equality between the sides
SELECT l.id AS lid, r.id AS rid FROM lhs l JOIN rhs r ON l.n > 8 AND r.amount > 95
