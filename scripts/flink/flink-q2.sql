SET 'parallelism.default' = '2';
SET 'table.local-time-zone' = 'UTC';
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dt BIGINT, extra VARCHAR,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/bid', 'format' = 'csv');
CREATE TABLE q2_out (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q2_out SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
