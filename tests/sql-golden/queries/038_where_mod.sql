-- MOD in a condition (negative operands)
SELECT k, i FROM events WHERE MOD(i, 7) = 0
