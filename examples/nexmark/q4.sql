-- Nexmark q4: average closing price per category. Each auction's final price is its
-- highest bid made while it was open (an interval join of bids to auctions: bid time
-- between the auction's start and expiry, state bounded by the watermark); the average of
-- those per category is an aggregate over an updating result: a raised maximum replaces
-- the auction's earlier one. The result updates, so it goes to a sink that takes upserts
-- (print here; a PostgreSQL table with PRIMARY KEY (category) in the tests).
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

CREATE TABLE q4_out (
  category BIGINT,
  avg_final DOUBLE,
  PRIMARY KEY (category) NOT ENFORCED
) WITH ('connector' = 'print');

INSERT INTO q4_out
SELECT Q.category, AVG(Q.final) AS avg_final
FROM (
  SELECT MAX(B.price) AS final, A.category
  FROM auction A, bid B
  WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
