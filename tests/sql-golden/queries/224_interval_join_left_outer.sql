-- LEFT interval join
SELECT l.id AS lid, r.id AS rid FROM lhs l LEFT JOIN rhs r ON l.k = r.k AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '10' SECOND
