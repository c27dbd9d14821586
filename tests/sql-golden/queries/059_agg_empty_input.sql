-- a global aggregate over no rows: no row in streaming mode
SELECT COUNT(*) AS c, SUM(i) AS si FROM events WHERE k = 999
