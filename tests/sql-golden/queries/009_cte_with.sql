-- a WITH clause
WITH big AS (SELECT k, i, s FROM events WHERE i >= 90) SELECT k, i, s FROM big WHERE k <> 0
