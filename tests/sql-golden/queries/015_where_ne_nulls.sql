-- <> drops NULL keys
SELECT k, i FROM jevents WHERE k <> 1
