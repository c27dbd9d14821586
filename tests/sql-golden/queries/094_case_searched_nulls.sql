-- searched CASE: NULL goes to ELSE
SELECT k, x, CASE WHEN x < 0 THEN 'neg' WHEN x = 0 THEN 'zero' ELSE 'pos-or-null' END AS sign_name FROM jevents WHERE k = 2 OR k IS NULL
