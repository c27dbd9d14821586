-- TRY_CAST of strings that are not numbers gives NULL
SELECT s, TRY_CAST(s AS INT) AS si, TRY_CAST(s AS DOUBLE) AS sd FROM jplain
