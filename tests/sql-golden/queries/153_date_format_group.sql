-- group by a DATE_FORMAT minute
SELECT DATE_FORMAT(ts, 'HH:mm') AS hm, COUNT(*) AS c FROM events GROUP BY DATE_FORMAT(ts, 'HH:mm')
