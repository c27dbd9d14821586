-- REPLACE
SELECT s, REPLACE(s, 'a', 'AA') AS r1, REPLACE(s, ' ', '') AS r2 FROM jevents WHERE k = 3
