-- INT key
SELECT i, COUNT(*) AS c FROM events WHERE i < 0 GROUP BY i
