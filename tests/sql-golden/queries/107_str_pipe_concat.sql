-- || with NULLs
SELECT k, s || '!' AS bang, s || CAST(b AS VARCHAR) AS sb FROM jevents WHERE k = 1
