-- CSV table joined with JSON table
SELECT e.k, e.i, e.s, l.id AS lid, l.name FROM events e JOIN lhs l ON e.k = l.k WHERE e.i > 85
