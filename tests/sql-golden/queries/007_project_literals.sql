-- literal columns of several types next to a column
SELECT k, 1 AS lit_one, 'lit' AS lit, 2.5 AS dec_lit, CAST(2.5 AS DOUBLE) AS dbl_lit, TRUE AS t, CAST(NULL AS VARCHAR) AS null_str FROM events WHERE i > 95
