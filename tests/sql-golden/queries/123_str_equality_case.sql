-- string equality is case sensitive
SELECT k, s FROM events WHERE s = 'alpha' OR UPPER(s) = 'BETA'
