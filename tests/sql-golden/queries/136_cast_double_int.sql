-- CAST DOUBLE to INT and BIGINT (toward zero)
SELECT x, CAST(x AS INT) AS xi, CAST(x AS BIGINT) AS xb FROM events WHERE k = -7
