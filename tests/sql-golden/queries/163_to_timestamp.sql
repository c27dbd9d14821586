-- TO_TIMESTAMP with the default and an explicit format
SELECT s, TO_TIMESTAMP(s) AS t1, TO_TIMESTAMP('10/03/2024 08:30', 'dd/MM/yyyy HH:mm') AS t2, TO_TIMESTAMP('2024-03-10 08:30:00.123') AS t3 FROM events WHERE s = '2024-03-10 08:30:00'
