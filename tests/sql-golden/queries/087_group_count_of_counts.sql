-- aggregate of an updating result grouped by a non-key column
SELECT c, COUNT(*) AS n_keys FROM (SELECT k, COUNT(*) AS c FROM events GROUP BY k) GROUP BY c
