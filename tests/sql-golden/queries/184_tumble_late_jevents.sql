-- TUMBLE 10 s over the JSON table (late rows dropped)
SELECT window_start, window_end, COUNT(*) AS c, SUM(x) AS sx FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end
