-- timestamp +/- INTERVAL
SELECT ts, ts + INTERVAL '1' HOUR AS plus1h, ts - INTERVAL '90' SECOND AS minus90s, ts + INTERVAL '1.25' SECOND AS plus1250ms FROM events WHERE k = -1
