-- window TVF without aggregation: rows with their windows
SELECT k, i, ts, window_start, window_end FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) WHERE k = 42
