-- renamed columns and a simple expression
SELECT k AS kk, i + 1 AS i_plus_one, s AS str FROM events
