-- POWER, SQRT, LN, EXP
SELECT i, POWER(i, 2) AS sq, SQRT(ABS(x)) AS rt, LN(i + 21) AS ln_i, EXP(CAST(i AS DOUBLE) / 50) AS ex FROM events WHERE k = 0
