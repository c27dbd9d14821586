-- NOT b drops NULL b
SELECT k, i, b FROM jevents WHERE NOT b
