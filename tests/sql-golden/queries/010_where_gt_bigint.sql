-- comparison on BIGINT
SELECT k, i, s FROM events WHERE k > 2
