-- Nexmark q6: average selling price per seller over their last closed auctions. An
-- auction's selling price is its highest bid made while it was open (the interval join of
-- q4). Grouping by the auction's expiry too makes each auction's result final when the
-- watermark passes its expiry (no bid can join it after that), so closed auctions form an
-- append-only stream, emitted once each; the OVER window then averages, per seller in order
-- of closing, the current auction and the 10 before it. Flink's q6 runs the OVER window over
-- an updating maximum, which Flink refuses (an OVER window cannot take retractions).
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE auction (
  id BIGINT,
  item_name VARCHAR,
  description VARCHAR,
  initial_bid BIGINT,
  reserve BIGINT,
  date_time TIMESTAMP(3),
  expires TIMESTAMP(3),
  seller BIGINT,
  category BIGINT,
  extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000000',
  -- Watermark alignment: neither table's source reads more than 10 s of event time ahead
  -- of the other's, so the join does not hold the faster one's rows (docs/sql.md).
  'scan.watermark.alignment.group' = 'nexmark', 'scan.watermark.alignment.max-drift' = '10s');

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel VARCHAR,
  url VARCHAR,
  date_time TIMESTAMP(3),
  extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000000',
  -- Watermark alignment: neither table's source reads more than 10 s of event time ahead
  -- of the other's, so the join does not hold the faster one's rows (docs/sql.md).
  'scan.watermark.alignment.group' = 'nexmark', 'scan.watermark.alignment.max-drift' = '10s');

CREATE TABLE q6_out (
  seller BIGINT,
  closed_at TIMESTAMP(3),
  final BIGINT,
  avg_final DOUBLE
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q6', 'format' = 'csv');

CREATE VIEW closed AS
SELECT A.id, A.seller, A.expires, MAX(B.price) AS final
FROM auction A, bid B
WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
GROUP BY A.id, A.seller, A.expires;

INSERT INTO q6_out
SELECT seller, expires, final,
  AVG(final) OVER (PARTITION BY seller ORDER BY expires
                   ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) AS avg_final
FROM closed;
