-- LPAD/RPAD, including truncation
SELECT s, LPAD(s, 8, '*') AS lp, RPAD(s, 3, 'xy') AS rp FROM jevents WHERE k = 42
