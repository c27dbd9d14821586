-- max count per window over a keyed window result (Nexmark q5 shape)
SELECT window_start, window_end, MAX(c) AS max_c FROM (SELECT k, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end) GROUP BY window_start, window_end
