-- CHAR_LENGTH counts characters (not bytes)
SELECT s, CHAR_LENGTH(s) AS n FROM jevents WHERE k IN (1, 2) OR k IS NULL
