-- AVG of an INT cast to DOUBLE
SELECT AVG(CAST(i AS DOUBLE)) AS avg_i FROM events
