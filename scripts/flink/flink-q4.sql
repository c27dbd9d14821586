SET 'parallelism.default' = '2';
SET 'table.local-time-zone' = 'UTC';
CREATE TABLE auction (id BIGINT, dt BIGINT, ex BIGINT, seller BIGINT, category BIGINT,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)), expires AS CAST(TO_TIMESTAMP_LTZ(ex, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/auction', 'format' = 'csv');
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dt BIGINT, extra VARCHAR,
  date_time AS CAST(TO_TIMESTAMP_LTZ(dt, 3) AS TIMESTAMP(3)),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '@DATA@/flink/bid', 'format' = 'csv');
CREATE TABLE q4_out (category BIGINT, avg_final DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO q4_out
SELECT Q.category, AVG(Q.final) AS avg_final
FROM (
  SELECT MAX(B.price) AS final, A.category
  FROM auction A, bid B
  WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
