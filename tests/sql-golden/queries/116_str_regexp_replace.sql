-- REGEXP_REPLACE
SELECT s, REGEXP_REPLACE(s, '[aeiou]', '_') AS r FROM jevents WHERE k = -1
