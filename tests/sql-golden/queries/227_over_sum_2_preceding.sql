-- SUM over 2 preceding rows per key (late rows dropped)
SELECT k, ts, i, SUM(i) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s3 FROM events
