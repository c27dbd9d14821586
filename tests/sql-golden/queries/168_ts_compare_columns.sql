-- comparisons between timestamp columns
SELECT l.id AS lid, r.id AS rid, l.ts < r.ts AS before FROM lhs l JOIN rhs r ON l.k = r.k WHERE l.k = 2
