-- boolean operators on nullable columns (three-valued logic)
SELECT k, b, i, b AND i > 50 AS b_and, b OR i > 50 AS b_or, NOT b AS b_not FROM jevents WHERE k = 0 OR k IS NULL
