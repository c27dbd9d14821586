-- global COUNT(*) (updating)
SELECT COUNT(*) AS c FROM events
