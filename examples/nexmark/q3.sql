-- Nexmark q3: local item suggestion. Who is selling in category 10 in Oregon, Idaho or
-- California? A regular join of auctions with their sellers: both sides stay in keyed state
-- (as in Flink without a state TTL), so every auction meets its seller whichever comes first.
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
  extra VARCHAR
) WITH ('connector' = 'nexmark', 'events' = '1000000');

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
  extra VARCHAR
) WITH ('connector' = 'nexmark', 'events' = '1000000');

CREATE TABLE q3_out (
  name VARCHAR,
  city VARCHAR,
  state VARCHAR,
  id BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'weir-data/output/q3', 'format' = 'csv');

INSERT INTO q3_out
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
