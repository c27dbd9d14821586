-- LIKE over non-ASCII text
SELECT k, s FROM events WHERE s LIKE '%ö%' OR s LIKE '日%'
