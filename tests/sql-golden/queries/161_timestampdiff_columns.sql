-- TIMESTAMPDIFF between two columns
SELECT l.id AS lid, r.id AS rid, TIMESTAMPDIFF(SECOND, l.ts, r.ts) AS secs FROM lhs l JOIN rhs r ON l.k = r.k WHERE l.k = 1
