-- CAST '3.5' to DOUBLE
SELECT k, CAST(s AS DOUBLE) AS sd FROM events WHERE s = '3.5'
