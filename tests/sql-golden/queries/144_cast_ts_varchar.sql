-- CAST TIMESTAMP(3) to VARCHAR (millisecond digits)
SELECT ts, CAST(ts AS VARCHAR) AS sts FROM events WHERE k = 5
