-- IS NULL on BIGINT (null and missing fields)
SELECT i, s FROM jevents WHERE k IS NULL
