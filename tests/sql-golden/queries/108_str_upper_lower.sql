-- UPPER and LOWER over unicode (ß, accents, CJK, emoji)
SELECT s, UPPER(s) AS up, LOWER(s) AS low FROM jplain
