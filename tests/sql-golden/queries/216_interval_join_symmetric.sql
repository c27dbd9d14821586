-- interval join: within 5 s either way
SELECT l.id AS lid, r.id AS rid, r.amount FROM lhs l JOIN rhs r ON l.k = r.k AND r.ts BETWEEN l.ts - INTERVAL '5' SECOND AND l.ts + INTERVAL '5' SECOND
