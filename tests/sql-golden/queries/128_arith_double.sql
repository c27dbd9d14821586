-- DOUBLE arithmetic and rounding functions
SELECT x, x * 2 AS twice, x / 3 AS third, x + i AS plus_i, ABS(x) AS abs_x, ROUND(x, 1) AS r1, FLOOR(x) AS fl, CEIL(x) AS ce FROM events WHERE k = 2
