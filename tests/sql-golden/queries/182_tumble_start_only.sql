-- only window_start selected
SELECT window_start, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE jevents, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
