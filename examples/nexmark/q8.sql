-- Nexmark q8: monitor new users. People who opened an account and created an auction in
-- the same 10-second tumbling window: a window join of two window results.
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE person (
  id BIGINT,
  name VARCHAR,
  email_address VARCHAR,
  credit_card VARCHAR,
  city VARCHAR,
  state VARCHAR,
  date_time TIMESTAMP(3),
  extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000000',
  -- Watermark alignment: neither table's source reads more than 10 s of event time ahead
  -- of the other's, so the join does not hold the faster one's rows (docs/sql.md).
  'scan.watermark.alignment.group' = 'nexmark', 'scan.watermark.alignment.max-drift' = '10s');

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

CREATE TABLE q8_out (
  id BIGINT,
  name VARCHAR,
  starttime TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q8', 'format' = 'csv');

INSERT INTO q8_out
SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
