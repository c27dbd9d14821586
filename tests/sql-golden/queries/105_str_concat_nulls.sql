-- CONCAT is NULL when an argument is
SELECT k, s, CONCAT(s, '-', CAST(k AS VARCHAR)) AS c FROM jevents WHERE i > 60
