-- Bidding sessions per bidder: bids of one bidder at most 10 seconds apart form one
-- session (Flink's SESSION window table-valued function), with its bid count and top price.
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel VARCHAR,
  url VARCHAR,
  date_time TIMESTAMP(3),
  extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000000');

CREATE TABLE session_out (
  bidder BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  bids BIGINT,
  top_price BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/session', 'format' = 'csv');

INSERT INTO session_out
SELECT bidder, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top_price
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
