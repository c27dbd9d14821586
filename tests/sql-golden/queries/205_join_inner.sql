-- regular inner join: NULL keys never match, duplicate keys multiply
SELECT l.id AS lid, r.id AS rid, l.k, l.name, r.tag FROM lhs l JOIN rhs r ON l.k = r.k
