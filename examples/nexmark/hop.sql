-- Bids per auction in 10-second windows sliding every 2 seconds (the first half of Nexmark
-- q5, "hot items").
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

CREATE TABLE hop_out (
  auction BIGINT,
  num BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/hop', 'format' = 'csv');

INSERT INTO hop_out
SELECT auction, COUNT(*) AS num, window_start, window_end
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
