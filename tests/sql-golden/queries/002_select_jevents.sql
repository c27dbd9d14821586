-- every column of the JSON table: nulls and missing fields read as NULL
SELECT * FROM jevents
