-- CAST BIGINT to INT for values in range
SELECT k, CAST(k AS INT) AS ki FROM events WHERE k < 100 AND i > 90
