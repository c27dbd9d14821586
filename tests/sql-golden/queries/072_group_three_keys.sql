-- three keys
SELECT k, b, i > 50 AS big, COUNT(*) AS c FROM events GROUP BY k, b, i > 50
