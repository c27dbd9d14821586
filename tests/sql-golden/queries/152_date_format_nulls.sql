-- DATE_FORMAT of NULL timestamps
SELECT ts, DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm') AS f FROM jplain
