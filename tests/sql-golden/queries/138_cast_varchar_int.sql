-- CAST numeric strings to INT, BIGINT, DOUBLE
SELECT s, CAST(s AS INT) AS si, CAST(s AS BIGINT) AS sb, CAST(s AS DOUBLE) AS sd FROM events WHERE s = '42'
