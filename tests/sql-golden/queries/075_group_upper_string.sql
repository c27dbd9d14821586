-- group by UPPER(s)
SELECT UPPER(s) AS us, COUNT(*) AS c FROM events GROUP BY UPPER(s)
