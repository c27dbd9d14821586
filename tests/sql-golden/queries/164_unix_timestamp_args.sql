-- UNIX_TIMESTAMP of a string (UTC session zone), with and without a format
SELECT ts, UNIX_TIMESTAMP(CAST(ts AS VARCHAR), 'yyyy-MM-dd HH:mm:ss.SSS') AS secs, UNIX_TIMESTAMP('2024-03-10 08:30:00') AS lit, UNIX_TIMESTAMP('10.03.2024', 'dd.MM.yyyy') AS day_secs FROM events WHERE k = 3
