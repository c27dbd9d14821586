-- INT arithmetic: integer division truncates, MOD sign follows the dividend
SELECT i, i + 1 AS plus1, i - 3 AS minus3, i * 2 AS times2, i / 7 AS div7, MOD(i, 7) AS mod7, -i AS neg, ABS(i) AS abs_i FROM events WHERE k = 1
