-- NOT LIKE drops NULL
SELECT k, s FROM jevents WHERE s NOT LIKE '%a%'
