-- equi-join with a non-equi condition
SELECT l.id AS lid, r.id AS rid, l.n, r.amount FROM lhs l JOIN rhs r ON l.k = r.k AND r.amount > l.n * 10
