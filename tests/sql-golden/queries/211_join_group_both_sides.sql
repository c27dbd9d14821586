-- join two aggregated inputs
SELECT a.k, a.cl, b.cr FROM (SELECT k, COUNT(*) AS cl FROM lhs GROUP BY k) a JOIN (SELECT k, COUNT(*) AS cr FROM rhs GROUP BY k) b ON a.k = b.k
