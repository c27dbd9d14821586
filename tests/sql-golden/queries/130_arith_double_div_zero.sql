-- DOUBLE division by zero: Infinity, -Infinity, NaN
SELECT x, x / (x - x) AS inf, (x - x) / (x - x) AS nan_val FROM events WHERE k = -7 AND i > 60
