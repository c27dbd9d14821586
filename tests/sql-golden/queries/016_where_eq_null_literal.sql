-- = NULL is never true
SELECT k, i FROM jevents WHERE k = CAST(NULL AS BIGINT)
