-- CASE with numeric results of mixed types
SELECT k, i, CASE WHEN b THEN i ELSE x END AS pick FROM events WHERE k = 3
