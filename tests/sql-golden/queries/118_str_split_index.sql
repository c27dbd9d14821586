-- SPLIT_INDEX (0-based; NULL past the end)
SELECT s, SPLIT_INDEX(s, '-', 1) AS p1, SPLIT_INDEX(s, ',', 0) AS p0 FROM events WHERE k = 3
