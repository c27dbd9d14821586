-- Top-N: 3 largest i per key
SELECT k, i, rn FROM (SELECT k, i, ROW_NUMBER() OVER (PARTITION BY k ORDER BY i DESC) AS rn FROM events) WHERE rn <= 3
