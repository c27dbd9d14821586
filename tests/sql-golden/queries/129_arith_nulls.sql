-- arithmetic with NULL operands
SELECT k, i, x, i + k AS ik, x * i AS xi, x - k AS xk FROM jevents WHERE k = 1 OR k IS NULL
