-- VARCHAR key over unicode, commas, quotes
SELECT s, COUNT(*) AS c FROM events GROUP BY s
