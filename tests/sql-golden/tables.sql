-- The input tables of the golden SQL corpus (README.md). @DATA@ is the absolute path of
-- tests/sql-golden/data, substituted by the runner. Each path is a folder with one file.

-- CSV, no header: no NULLs (Flink's csv format reads no text as NULL without options).
CREATE TABLE events (
  k BIGINT, i INT, x DOUBLE, s VARCHAR, b BOOLEAN, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '@DATA@/events', 'format' = 'csv');

-- JSON lines, the same columns: nulls and missing fields in every column but ts.
CREATE TABLE jevents (
  k BIGINT, i INT, x DOUBLE, s VARCHAR, b BOOLEAN, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '@DATA@/jevents', 'format' = 'json');

-- JSON lines without a watermark: NULL (and missing) timestamps too.
CREATE TABLE jplain (
  k BIGINT, i INT, x DOUBLE, s VARCHAR, b BOOLEAN, ts TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = '@DATA@/jplain', 'format' = 'json');

-- Join tables: NULL keys on both sides, duplicate keys, keys on one side only.
CREATE TABLE lhs (
  id BIGINT, k BIGINT, name VARCHAR, n INT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = '@DATA@/lhs', 'format' = 'json');

CREATE TABLE rhs (
  id BIGINT, k BIGINT, tag VARCHAR, amount DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = '@DATA@/rhs', 'format' = 'json');
