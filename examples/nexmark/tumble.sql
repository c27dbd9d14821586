-- Bids per auction in 10-second tumbling windows of event time, with the highest price:
-- the windowed count Flink's Nexmark figures are usually quoted for.
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

CREATE TABLE tumble_out (
  auction BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  bids BIGINT,
  top_price BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/tumble', 'format' = 'csv');

INSERT INTO tumble_out
SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
