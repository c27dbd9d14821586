-- TUMBLE 10 seconds (more windows closed before late rows)
SELECT window_start, window_end, COUNT(*) AS c, SUM(i) AS si FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end
