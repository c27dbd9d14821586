-- Weir's tables for scripts/flink-compare: the files hold ISO timestamps.
SET 'parallelism.default' = '2';
CREATE TABLE person (id BIGINT, name VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/person', 'format' = 'csv');
CREATE TABLE auction (id BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/auction', 'format' = 'csv');
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/bid', 'format' = 'csv');
