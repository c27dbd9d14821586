-- Nexmark q0: pass-through. Measures the cost of reading and writing bids.
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000000');

CREATE TABLE q0_out (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  extra VARCHAR
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q0', 'format' = 'csv');

INSERT INTO q0_out SELECT auction, bidder, price, date_time, extra FROM bid;
