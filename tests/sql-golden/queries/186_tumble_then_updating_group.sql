-- a non-window GROUP BY over a window result
SELECT k, SUM(c) AS total, COUNT(*) AS n_windows FROM (SELECT k, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end) GROUP BY k
