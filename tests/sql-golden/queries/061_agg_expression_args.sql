-- aggregates over expressions
SELECT SUM(i * 2) AS s2, MAX(x + i) AS mxi, MIN(CHAR_LENGTH(s)) AS min_len FROM events
