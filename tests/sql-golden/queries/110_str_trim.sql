-- TRIM, LTRIM, RTRIM, TRIM of a character
SELECT s, TRIM(s) AS t, LTRIM(s) AS lt, RTRIM(s) AS rt, TRIM(BOTH 'a' FROM s) AS ta, TRIM(LEADING ' ' FROM s) AS tl FROM jevents WHERE k = 1
