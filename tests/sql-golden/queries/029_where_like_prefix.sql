-- LIKE prefix
SELECT k, s FROM events WHERE s LIKE 'a%'
