-- AND/OR precedence
SELECT k, i FROM events WHERE (k = 1 OR k = 2) AND i > 50
