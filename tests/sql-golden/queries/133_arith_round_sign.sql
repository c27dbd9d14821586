-- ROUND to 0 digits and SIGN
SELECT x, ROUND(x, 0) AS r0, ROUND(x) AS r, SIGN(x) AS sg, TRUNCATE(x, 1) AS tr FROM events WHERE k = -1
