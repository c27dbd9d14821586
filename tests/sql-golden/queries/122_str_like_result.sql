-- LIKE as a column
SELECT s, s LIKE '%a%' AS has_a FROM jevents WHERE k = -7
