-- a regular join keeping both timestamps
SELECT l.id AS lid, r.id AS rid, l.ts AS lts, r.ts AS rts FROM lhs l JOIN rhs r ON l.k = r.k WHERE l.k = 3
