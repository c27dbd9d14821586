-- GROUP BY over a join (updating); no SUM of DOUBLE: its last bits depend on how the two sources interleave
SELECT l.k, COUNT(*) AS c, SUM(r.id) AS sum_rid, MIN(r.amount) AS min_amount, MAX(r.amount) AS max_amount, MAX(r.tag) AS max_tag FROM lhs l JOIN rhs r ON l.k = r.k GROUP BY l.k
