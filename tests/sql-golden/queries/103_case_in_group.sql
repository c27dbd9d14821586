-- CASE as a group key
SELECT CASE WHEN x < 0 THEN 'neg' ELSE 'nonneg' END AS sign_name, COUNT(*) AS c FROM events GROUP BY CASE WHEN x < 0 THEN 'neg' ELSE 'nonneg' END
