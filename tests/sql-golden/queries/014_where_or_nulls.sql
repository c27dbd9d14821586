-- OR with NULL operands: NULL OR TRUE is TRUE
SELECT k, i, x FROM jevents WHERE k = 1 OR x > 40
