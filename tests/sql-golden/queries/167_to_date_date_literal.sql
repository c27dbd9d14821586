-- TO_DATE and a DATE comparison
SELECT ts, TO_DATE(DATE_FORMAT(ts, 'yyyy-MM-dd')) AS d FROM events WHERE CAST(ts AS DATE) = DATE '2024-03-10' AND k = 42
