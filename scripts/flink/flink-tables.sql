-- Flink's tables for scripts/flink-compare: the files hold epoch milliseconds (Flink's CSV
-- format reads timestamps only as 'yyyy-MM-dd HH:mm:ss'), so the timestamps are computed.
SET 'parallelism.default' = '2';
SET 'table.local-time-zone' = 'UTC';
CREATE TABLE person (id BIGINT, name VARCHAR, city VARCHAR, state VARCHAR, dt BIGINT,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/person', 'format' = 'csv');
CREATE TABLE auction (id BIGINT, dt BIGINT, ex BIGINT, seller BIGINT, category BIGINT,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)), expires AS CAST(TO_TIMESTAMP_LTZ(ex, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/auction', 'format' = 'csv');
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dt BIGINT, extra VARCHAR,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/bid', 'format' = 'csv');
