-- negative and fractional doubles
SELECT k, x FROM events WHERE x < -40
