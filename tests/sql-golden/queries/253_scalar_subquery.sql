-- scalar subquery in a comparison
SELECT k, i FROM events WHERE i > (SELECT AVG(i) FROM events) + 45
