-- a join with a VALUES table
SELECT e.k, e.i, v.label FROM events e JOIN (VALUES (CAST(1 AS BIGINT), 'one'), (CAST(2 AS BIGINT), 'two')) AS v(k, label) ON e.k = v.k WHERE e.i > 90
