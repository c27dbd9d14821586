-- BIGINT op INT
SELECT k, i, k * i AS prod, k + i AS total, k - i AS diff FROM events WHERE k < 100 AND i > 90
