-- CONCAT_WS skips NULL arguments
SELECT k, CONCAT_WS('|', s, CAST(i AS VARCHAR), 'z') AS c FROM jevents WHERE i > 60 OR i IS NULL
