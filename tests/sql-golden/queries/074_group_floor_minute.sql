-- group by FLOOR(ts TO MINUTE)
SELECT FLOOR(ts TO MINUTE) AS minute_start, COUNT(*) AS c FROM events GROUP BY FLOOR(ts TO MINUTE)
