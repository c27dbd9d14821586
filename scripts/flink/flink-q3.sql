SET 'parallelism.default' = '2';
SET 'table.local-time-zone' = 'UTC';
CREATE TABLE person (id BIGINT, name VARCHAR, city VARCHAR, state VARCHAR, dt BIGINT,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/person', 'format' = 'csv');
CREATE TABLE auction (id BIGINT, dt BIGINT, ex BIGINT, seller BIGINT, category BIGINT,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)), expires AS CAST(TO_TIMESTAMP_LTZ(ex, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/auction', 'format' = 'csv');
CREATE TABLE q3_out (name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q3_out
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
