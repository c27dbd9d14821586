-- SIMILAR TO
SELECT k, s FROM events WHERE s SIMILAR TO '[a-z]+(-[a-z]+)*'
