-- DATE_FORMAT with names and compact patterns
SELECT ts, DATE_FORMAT(ts, 'EEE, MMM d yyyy') AS named, DATE_FORMAT(ts, 'yyyyMMddHHmmssSSS') AS compact, DATE_FORMAT(ts, 'h:mm a') AS twelve FROM events WHERE k = -7
