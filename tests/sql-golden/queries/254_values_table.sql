-- a VALUES table
SELECT a, b FROM (VALUES (1, 'one'), (2, 'two'), (3, CAST(NULL AS VARCHAR))) AS t(a, b)
