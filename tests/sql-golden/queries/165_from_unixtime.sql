-- FROM_UNIXTIME with and without a format
SELECT i, FROM_UNIXTIME(1710059400 + i) AS t1, FROM_UNIXTIME(i * 3600, 'yyyy-MM-dd HH:mm') AS t2 FROM events WHERE k = 1 AND i > 50
