-- UPPER and LOWER over the CSV strings
SELECT k, s, UPPER(s) AS up, LOWER(s) AS low FROM events WHERE k = 2
