-- AVG of an INT column: Flink keeps INT (truncated)
SELECT AVG(i) AS avg_i FROM events
