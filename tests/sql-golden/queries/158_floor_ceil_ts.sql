-- FLOOR and CEIL of a timestamp
SELECT ts, FLOOR(ts TO MINUTE) AS fm, FLOOR(ts TO HOUR) AS fh, CEIL(ts TO MINUTE) AS cm, FLOOR(ts TO SECOND) AS fs FROM events WHERE k = 2
