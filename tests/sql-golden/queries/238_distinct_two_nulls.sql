-- SELECT DISTINCT of two nullable columns
SELECT DISTINCT k, b FROM jevents
