-- IN subquery
SELECT k, i FROM events WHERE k IN (SELECT k FROM lhs) AND i > 90
