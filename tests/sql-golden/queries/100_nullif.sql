-- NULLIF
SELECT k, NULLIF(i, 0) AS i2, NULLIF(s, '') AS s2, NULLIF(k, 1) AS k2 FROM events WHERE k IN (0, 1) AND i < 20
