-- an expression as a window group key
SELECT MOD(i, 2) AS parity, window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTE)) GROUP BY MOD(i, 2), window_start, window_end
