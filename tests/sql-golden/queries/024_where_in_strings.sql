-- IN list of strings with '' and unicode
SELECT k, s FROM events WHERE s IN ('alpha', '日本語', '', 'a,b')
