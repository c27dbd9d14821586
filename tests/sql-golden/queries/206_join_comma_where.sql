-- join written as FROM a, b WHERE
SELECT l.id AS lid, r.id AS rid, r.amount FROM lhs l, rhs r WHERE l.k = r.k AND r.amount > 50
