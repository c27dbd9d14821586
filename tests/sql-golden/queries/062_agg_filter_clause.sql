-- aggregate FILTER (WHERE ...)
SELECT COUNT(*) FILTER (WHERE b) AS c_true, SUM(i) FILTER (WHERE k > 0) AS s_pos FROM events
