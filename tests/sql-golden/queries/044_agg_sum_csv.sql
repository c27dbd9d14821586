-- SUM of BIGINT, INT, DOUBLE
SELECT SUM(k) AS sum_k, SUM(i) AS sum_i, SUM(x) AS sum_x FROM events
