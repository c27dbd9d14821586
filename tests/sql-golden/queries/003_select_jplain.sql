-- JSON without watermark: NULL and missing timestamps
SELECT * FROM jplain
