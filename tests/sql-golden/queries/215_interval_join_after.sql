-- interval join: rhs within 10 s after lhs
SELECT l.id AS lid, r.id AS rid, l.k, l.ts AS lts, r.ts AS rts FROM lhs l JOIN rhs r ON l.k = r.k AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '10' SECOND
