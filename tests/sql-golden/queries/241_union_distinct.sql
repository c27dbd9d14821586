-- UNION removes duplicates
SELECT k FROM events UNION SELECT k FROM jevents
