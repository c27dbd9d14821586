-- IS TRUE / IS NOT FALSE / IS UNKNOWN on a nullable BOOLEAN
SELECT k, b, b IS TRUE AS is_t, b IS NOT FALSE AS not_f, b IS UNKNOWN AS unk FROM jevents WHERE k = 3 OR k IS NULL
