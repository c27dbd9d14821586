-- COUNT(DISTINCT) per window
SELECT window_start, window_end, COUNT(DISTINCT k) AS dk, COUNT(DISTINCT s) AS ds FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end
