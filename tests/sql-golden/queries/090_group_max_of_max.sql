-- MAX over an updating result
SELECT b, MAX(mx) AS max_max FROM (SELECT k, b, MAX(i) AS mx FROM events GROUP BY k, b) GROUP BY b
