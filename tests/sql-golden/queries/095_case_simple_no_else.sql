-- simple CASE without ELSE gives NULL
SELECT k, CASE k WHEN 1 THEN 'one' WHEN 2 THEN 'two' END AS k_name FROM jevents WHERE i > 80
