-- window join of two TUMBLE window tables
SELECT L.id AS lid, R.id AS rid, L.k, L.window_start, L.window_end FROM (SELECT * FROM TABLE(TUMBLE(TABLE lhs, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) L JOIN (SELECT * FROM TABLE(TUMBLE(TABLE rhs, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) R ON L.k = R.k AND L.window_start = R.window_start AND L.window_end = R.window_end
