-- REGEXP_EXTRACT with a group index
SELECT s, REGEXP_EXTRACT(s, '([a-z]+)-([a-z]+)', 2) AS g2, REGEXP_EXTRACT(s, '([a-z]+)', 1) AS g1 FROM jevents WHERE k = 0
