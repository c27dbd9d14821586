-- interval join with strict bounds
SELECT l.id AS lid, r.id AS rid FROM lhs l, rhs r WHERE l.k = r.k AND l.ts < r.ts AND r.ts < l.ts + INTERVAL '20' SECOND
