-- concatenating numbers cast to VARCHAR
SELECT k, CAST(k AS VARCHAR) || ':' || CAST(i AS VARCHAR) AS ki FROM events WHERE i > 95
