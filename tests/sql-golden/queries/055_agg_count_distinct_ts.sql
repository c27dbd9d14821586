-- COUNT(DISTINCT) of a timestamp
SELECT COUNT(DISTINCT ts) AS dts FROM events
