-- two COUNT(DISTINCT) over different columns
SELECT COUNT(DISTINCT k) AS dk, COUNT(DISTINCT s) AS ds FROM events
