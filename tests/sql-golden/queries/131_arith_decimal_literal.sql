-- arithmetic with decimal literals
SELECT i, i * 1.5 AS i15, x * 0.1 AS x01, i + 0.25 AS i025 FROM events WHERE k = 42
