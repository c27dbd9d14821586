-- several string functions over the CSV strings
SELECT s, CHAR_LENGTH(s) AS n, UPPER(SUBSTRING(s, 1, 3)) AS head3, REPLACE(s, ',', ';') AS semi FROM events WHERE k = 5
