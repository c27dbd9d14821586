-- REVERSE over unicode
SELECT s, REVERSE(s) AS r FROM jplain
