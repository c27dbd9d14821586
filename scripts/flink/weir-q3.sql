SET 'parallelism.default' = '2';
CREATE TABLE person (id BIGINT, name VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/person', 'format' = 'csv');
CREATE TABLE auction (id BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/iso/auction', 'format' = 'csv');
CREATE TABLE q3_out (name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q3_out
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
