-- deduplication: first row per key in event time
SELECT k, ts, i FROM (SELECT k, ts, i, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ASC) AS rn FROM events) WHERE rn = 1
