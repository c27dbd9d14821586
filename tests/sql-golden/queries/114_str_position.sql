-- POSITION (1-based, 0 when absent)
SELECT s, POSITION('a' IN s) AS pa, POSITION('l' IN s) AS pl FROM jevents WHERE k = 5
