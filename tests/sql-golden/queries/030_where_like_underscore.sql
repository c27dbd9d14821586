-- LIKE with _ 
SELECT k, s FROM events WHERE s LIKE '_e%'
