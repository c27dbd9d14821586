-- string comparison (code point order)
SELECT k, s FROM events WHERE s > 'b' AND k = 2
