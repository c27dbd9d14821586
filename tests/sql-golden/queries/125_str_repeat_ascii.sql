-- REPEAT
SELECT s, REPEAT(s, 2) AS twice FROM jevents WHERE k = 2
