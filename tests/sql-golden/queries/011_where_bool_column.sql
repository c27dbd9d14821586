-- a BOOLEAN column as the condition
SELECT k, i FROM events WHERE b
