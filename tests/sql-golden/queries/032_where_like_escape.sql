-- LIKE with ESCAPE
SELECT k, s FROM events WHERE s LIKE 'x!_y%' ESCAPE '!'
