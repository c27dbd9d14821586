SET 'parallelism.default' = '2';
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/bid', 'format' = 'csv');
CREATE TABLE q2_out (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q2_out SELECT auction, price FROM bid WHERE auction % 123 = 0;
