-- expressions over aggregates
SELECT k, SUM(x) / COUNT(*) AS mean_x, MAX(i) - MIN(i) AS range_i FROM events GROUP BY k
