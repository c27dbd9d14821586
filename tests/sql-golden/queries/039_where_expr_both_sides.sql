-- arithmetic on both sides
SELECT k, i, x FROM events WHERE i * 2 > x + 100
