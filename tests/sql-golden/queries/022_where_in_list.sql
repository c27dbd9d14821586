-- IN list of BIGINT
SELECT k, i FROM events WHERE k IN (1, 2, 42)
