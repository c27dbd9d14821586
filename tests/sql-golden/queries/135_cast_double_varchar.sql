-- CAST DOUBLE to VARCHAR (Java's Double text)
SELECT x, CAST(x AS VARCHAR) AS sx FROM events WHERE k = 3
