-- CASE of string literals of different lengths (Flink's result type)
SELECT i, CASE WHEN i < 0 THEN 'negative' WHEN i < 50 THEN 'low' ELSE 'high' END AS bucket FROM events WHERE k = 5
