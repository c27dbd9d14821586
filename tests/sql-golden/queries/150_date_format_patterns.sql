-- DATE_FORMAT with several Java patterns
SELECT ts, DATE_FORMAT(ts, 'yyyy-MM-dd') AS d, DATE_FORMAT(ts, 'HH:mm:ss') AS hms, DATE_FORMAT(ts, 'yyyy/MM/dd HH:mm') AS ymdhm, DATE_FORMAT(ts, 'HH:mm:ss.SSS') AS ms FROM events WHERE k = 3
