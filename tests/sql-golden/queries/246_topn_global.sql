-- Top-N without partition
SELECT x, rn FROM (SELECT x, ROW_NUMBER() OVER (ORDER BY x DESC) AS rn FROM events) WHERE rn <= 5
