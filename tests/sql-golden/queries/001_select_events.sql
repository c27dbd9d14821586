-- every column of the CSV table: '' strings, commas, quotes, backslashes, unicode, timestamps
SELECT k, i, x, s, b, ts FROM events
