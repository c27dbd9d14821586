-- Nexmark q2: selection. Bids on every 123rd auction.
-- (Flink's text is MOD(auction, 123) = 0; `%` is the same and needs no extra functions.)
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  date_time TIMESTAMP(3),
  extra VARCHAR
) WITH ('connector' = 'nexmark', 'events' = '1000000');

CREATE TABLE q2_out (
  auction BIGINT,
  price BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q2', 'format' = 'csv');

INSERT INTO q2_out SELECT auction, price FROM bid WHERE auction % 123 = 0;
