-- LEFT JOIN: unmatched and NULL-key lhs rows padded with NULLs
SELECT l.id AS lid, l.k, r.id AS rid, r.tag FROM lhs l LEFT JOIN rhs r ON l.k = r.k
