-- NOT IN drops NULL keys
SELECT k, i FROM jevents WHERE k NOT IN (1, 2)
