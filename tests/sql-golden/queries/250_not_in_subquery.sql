-- NOT IN subquery with NULLs in the subquery (no row passes)
SELECT k, i FROM events WHERE k NOT IN (SELECT k FROM lhs) AND i > 90
