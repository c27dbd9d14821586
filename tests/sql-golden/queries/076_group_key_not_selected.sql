-- group key not in the select list
SELECT COUNT(*) AS c, SUM(i) AS si FROM events GROUP BY k
