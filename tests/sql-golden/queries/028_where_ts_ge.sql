-- timestamp comparison with a literal
SELECT k, ts FROM events WHERE ts >= TIMESTAMP '2024-03-10 08:13:30.5'
