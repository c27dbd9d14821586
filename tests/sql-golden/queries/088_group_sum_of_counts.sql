-- global SUM over an updating result
SELECT SUM(c) AS total, COUNT(*) AS n_keys FROM (SELECT k, COUNT(*) AS c FROM events GROUP BY k)
