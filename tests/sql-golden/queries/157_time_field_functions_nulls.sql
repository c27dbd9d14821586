-- HOUR/MINUTE of NULL timestamps
SELECT ts, HOUR(ts) AS h, MINUTE(ts) AS mi, DAYOFYEAR(ts) AS doy, DAYOFWEEK(ts) AS dow FROM jplain
