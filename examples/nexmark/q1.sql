-- Nexmark q1: currency conversion. Bid prices in dollars, converted to euros.
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  extra VARCHAR
) WITH ('connector' = 'nexmark', 'events' = '1000000');

CREATE TABLE q1_out (
  auction BIGINT,
  bidder BIGINT,
  price DOUBLE,
  date_time TIMESTAMP(3),
  extra VARCHAR
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q1', 'format' = 'csv');

INSERT INTO q1_out
SELECT auction, bidder, 0.908 * price AS price, date_time, extra
FROM bid;
