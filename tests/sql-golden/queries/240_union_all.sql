-- UNION ALL of the CSV and JSON tables
SELECT k, s FROM events WHERE i > 90 UNION ALL SELECT k, s FROM jevents WHERE i > 90
