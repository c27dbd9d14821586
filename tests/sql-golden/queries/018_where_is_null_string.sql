-- IS NULL on VARCHAR: '' is not NULL
SELECT k, i FROM jevents WHERE s IS NULL
