-- IS NOT DISTINCT FROM between two nullable columns
SELECT k, i, x FROM jevents WHERE CAST(i AS DOUBLE) IS NOT DISTINCT FROM x
