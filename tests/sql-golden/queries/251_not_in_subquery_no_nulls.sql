-- NOT IN subquery without NULLs
SELECT k, i FROM events WHERE k NOT IN (SELECT k FROM lhs WHERE k IS NOT NULL) AND i > 90
