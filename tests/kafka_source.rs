//! The Kafka source against a real Kafka-compatible broker (tansu, started per test; see
//! `tests/common/kafka.rs` and `docs/kafka.md`): where it starts (a timestamp, `latest`, the
//! consumer group's offsets), partitions added while it runs, malformed messages, and its
//! CSV and raw formats and metadata columns.

mod common;

use common::kafka::Broker;
use common::*;
use rdkafka::producer::{FutureRecord, Producer};
use std::time::Duration;

/// Starting from a timestamp: each partition starts at its first record whose timestamp is
/// at or after the start time and takes every record after it, including later records with
/// earlier timestamps (Kafka's `offsetsForTimes` semantics). tansu answers the lookup with
/// offset 0, so this also shows the source's own skip of the records before that first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_starts_at_a_timestamp() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("stamped", 2).await;
    let (old, start, new) = (
        1_600_000_000_000i64,
        1_650_000_000_000i64,
        1_700_000_000_000i64,
    );
    let producer = broker.producer();
    // Per partition: 300 records before the start time (phase 0), 200 after it (phase 1),
    // with one record stamped before the start time among them (phase 2).
    for partition in 0..2 {
        for i in 0..500i64 {
            let (phase, ts) = match i {
                0..300 => (0, old + i),
                350 => (2, old + i),
                _ => (1, new + i),
            };
            let payload = format!(r#"{{"k":{i},"phase":{phase}}}"#);
            producer
                .send(
                    FutureRecord::<(), _>::to("stamped")
                        .partition(partition)
                        .timestamp(ts)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    }
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    let client = cluster.wait_slots(2).await;
    let out = cluster.path("out");
    let job = format!(
        r#"{{
  "name": "kafka-from-timestamp",
  "checkpoint": {{ "interval_ms": 300 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 2, "bootstrap_servers": "{}",
       "topic": "stamped", "format": "json", "schema": [["k", "int64"], ["phase", "int64"]],
       "start": {{ "timestamp": {start} }}, "bounded": true }},
    {{ "id": "out", "type": "file_sink", "parallelism": 2, "inputs": [{{ "from": "events" }}],
       "path": "{}", "format": "csv" }}
  ]
}}"#,
        broker.addr(),
        out.display()
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    wait_until(&client, &id, 90, "the bounded job to finish", |s| {
        s.state == "FINISHED"
    })
    .await;
    let mut phases = [0usize; 3];
    for line in committed_lines(&out) {
        let phase: usize = line
            .rsplit(',')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("phase");
        phases[phase] += 1;
    }
    eprintln!("kafka-from-timestamp: rows per phase {phases:?}");
    assert_eq!(
        phases,
        [0, 2 * 199, 2],
        "from each partition: nothing before the first record at the start time, everything after it"
    );
}

/// Where a partition without checkpointed state starts: `latest` skips what was there when
/// the job started; `group` starts at the consumer group's committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_starts_at_latest_or_at_the_group_offsets() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("starts", 1).await;
    let producer = broker.producer();
    let produce = |ids: std::ops::Range<i64>| {
        let producer = producer.clone();
        async move {
            for i in ids {
                let payload = format!(r#"{{"id":{i}}}"#);
                producer
                    .send(
                        FutureRecord::<(), _>::to("starts")
                            .partition(0)
                            .payload(&payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("delivered");
            }
        }
    };
    produce(0..10).await;
    // group "readers" has committed offset 4
    let group: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "readers")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("starts", 0, rdkafka::Offset::Offset(4))
        .expect("offset");
    group.commit(&tpl, CommitMode::Sync).expect("commit");
    let job = |start: &str, bounded: bool| {
        format!(
            r#"{{
  "name": "kafka-starts",
  "checkpoint": {{ "interval_ms": 300 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{}",
       "topic": "starts", "format": "json", "schema": [["id", "int64"]], "start": "{start}",
       "group_id": "readers", "bounded": {bounded} }},
    {{ "id": "out", "type": "file_sink", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "path": "{{out}}", "format": "jsonl" }}
  ]
}}"#,
            broker.addr()
        )
    };
    let ids = |rows: Vec<serde_json::Value>| {
        let mut v: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        ids(run_to_jsonl(&job("group", true))),
        (4..10).collect::<Vec<_>>()
    );

    // latest: an unbounded job on a cluster; what is produced after it started arrives
    let mut cluster = TestCluster::new();
    cluster.start_tm(1);
    let client = cluster.wait_slots(1).await;
    let out = cluster.path("out");
    let latest = job("latest", false).replace("{out}", &out.display().to_string());
    let id = client.submit_json(&latest, None).await.expect("submit");
    wait_until(&client, &id, 60, "the job running", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= 1
    })
    .await;
    produce(10..15).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let read = || -> Vec<i64> {
        let mut v: Vec<i64> = committed_lines(&out)
            .iter()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json line")["id"].as_i64()
            })
            .collect();
        v.sort_unstable();
        v
    };
    while read().len() < 5 {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("rows: {:?}", read());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.cancel(&id).await.expect("cancel");
    assert_eq!(
        read(),
        (10..15).collect::<Vec<_>>(),
        "only what came after the start"
    );
}

/// Partitions added to a topic while a job reads it are picked up (from their earliest
/// offset) by the subtask that owns them. tansu has no CreatePartitions, so the broker runs on
/// S3 storage (moto) and the test grows the topic in the broker's catalogue there, which the
/// running broker then reports to every client, as Kafka would after CreatePartitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_picks_up_partitions_added_while_running() {
    let Some(s3) = common::kafka::MotoS3::start() else {
        return;
    };
    let Some(broker) = Broker::start_on_s3(&s3) else {
        return;
    };
    broker.create_topic("growing", 1).await;
    let mut cluster = TestCluster::new();
    cluster.start_tm(4);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let job = format!(
        r#"{{
  "name": "kafka-growing",
  "checkpoint": {{ "interval_ms": 500 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 2, "bootstrap_servers": "{}",
       "topic": "growing", "format": "json", "schema": [["id", "int64"]],
       "metadata_columns": true, "discovery_interval_ms": 500 }},
    {{ "id": "pick", "type": "project", "parallelism": 2, "inputs": [{{ "from": "events" }}],
       "exprs": [{{ "expr": "id", "as": "id" }}, {{ "expr": "_partition", "as": "p" }}] }},
    {{ "id": "out", "type": "file_sink", "parallelism": 2, "inputs": [{{ "from": "pick" }}],
       "path": "{}", "format": "csv" }}
  ]
}}"#,
        broker.addr(),
        out.display()
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    wait_until(&client, &id, 60, "the job running", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= 1
    })
    .await;
    let producer = broker.producer();
    let produce = |partition: i32, ids: std::ops::Range<i64>| {
        let producer = producer.clone();
        async move {
            for i in ids {
                let payload = format!(r#"{{"id":{i}}}"#);
                producer
                    .send(
                        FutureRecord::<(), _>::to("growing")
                            .partition(partition)
                            .payload(&payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("delivered");
            }
        }
    };
    // (id, partition) of every committed output row
    let committed = |dir: &std::path::Path| -> Vec<(i64, i64)> {
        committed_lines(dir)
            .iter()
            .map(|line| {
                let mut f = line.split(',').map(|v| v.parse::<i64>().expect("number"));
                (f.next().expect("id"), f.next().expect("partition"))
            })
            .collect()
    };
    let wait_rows = |n: usize| {
        let committed = &committed;
        let (out, cluster) = (&out, &cluster);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while committed(out).len() < n {
                if std::time::Instant::now() > deadline {
                    cluster.dump_logs();
                    panic!("{} of {n} rows committed", committed(out).len());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    produce(0, 0..100).await;
    wait_rows(100).await;
    broker.grow_topic("growing", 3);
    let grown = std::time::Instant::now();
    let deadline = grown + Duration::from_secs(30);
    loop {
        let md = producer
            .client()
            .fetch_metadata(Some("growing"), Duration::from_secs(5))
            .expect("metadata");
        if md
            .topics()
            .first()
            .is_some_and(|t| t.partitions().len() == 3)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker never reported 3 partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "kafka-growing: the broker reported 3 partitions {} ms after the edit",
        grown.elapsed().as_millis()
    );
    produce(1, 100..200).await;
    produce(2, 200..300).await;
    wait_rows(300).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.cancel(&id).await.expect("cancel");
    let rows = committed(&out);
    let ids: std::collections::BTreeSet<i64> = rows.iter().map(|(i, _)| *i).collect();
    let mut per_partition = [0usize; 3];
    for (i, p) in &rows {
        assert_eq!(*p, i / 100, "id {i} came from partition {p}");
        per_partition[*p as usize] += 1;
    }
    eprintln!("kafka-growing: rows per partition {per_partition:?}");
    assert_eq!(ids.len(), 300, "every record once");
    assert_eq!(rows.len(), 300, "no record twice");
    assert_eq!(per_partition, [100, 100, 100]);
}

/// Messages that are not one valid record of the table's format: by default the job fails,
/// naming the first one's partition and offset; with `"bad_records": "skip"` (SQL:
/// `'json.ignore-parse-errors' = 'true'`) each is logged and counted and the rest arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_fail_the_job_or_are_skipped_as_the_table_says() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("dirty", 1).await;
    let producer = broker.producer();
    for i in 0..100i64 {
        let payload = match i {
            50 => "not json at all".to_string(),
            51 => r#"{"id":"fifty-one"}"#.to_string(),
            _ => format!(r#"{{"id":{i}}}"#),
        };
        producer
            .send(
                FutureRecord::<(), _>::to("dirty")
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let run = |bad_records: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let job = format!(
            r#"{{
  "name": "kafka-dirty",
  "checkpoint": {{ "interval_ms": 300 }},
  "restart": "none",
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{}",
       "topic": "dirty", "format": "json", "schema": [["id", "int64"]], "bounded": true
       {bad_records} }},
    {{ "id": "out", "type": "file_sink", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "path": "{}", "format": "csv" }}
  ]
}}"#,
            broker.addr(),
            out.display()
        );
        let result = weir_run(dir.path(), &job);
        let mut ids: Vec<i64> = committed_lines(&out)
            .iter()
            .map(|l| l.parse().expect("id"))
            .collect();
        ids.sort_unstable();
        (result.ok, result.text, ids, dir)
    };

    let (ok, text, _, _dir) = run("");
    assert!(
        !ok,
        "a malformed message must fail the job by default:\n{text}"
    );
    assert!(
        text.contains("offset 50 of partition 0") && text.contains("bad_records"),
        "the failure names the message and the way out:\n{text}"
    );

    let (ok, text, ids, _dir) = run(r#", "bad_records": "skip""#);
    assert!(ok, "with skip the job finishes:\n{text}");
    let want: Vec<i64> = (0..100).filter(|i| *i != 50 && *i != 51).collect();
    assert_eq!(ids, want, "every valid message arrives once");
    let skipped: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("skipped a message"))
        .collect();
    eprintln!("kafka-dirty: {} rows, skip log: {skipped:?}", ids.len());
    assert_eq!(skipped.len(), 2, "each skipped message is logged:\n{text}");
    assert!(skipped[0].contains("offset=50") && skipped[1].contains("offset=51"));
    assert!(skipped[1].contains("skipped=2"), "and counted");
}

/// Runs a bounded job embedded (`weir run`) and returns the JSON rows of its `jsonl` file sink
/// at `out` (the job's `{out}` placeholder).
fn run_to_jsonl(job: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let job = job.replace("{out}", &out.display().to_string());
    let result = weir_run(dir.path(), &job);
    assert!(result.ok, "{}", result.text);
    committed_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The source's CSV and raw formats and its metadata columns: key, partition, offset,
/// timestamp and headers (the file sink writes JSON lines here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_reads_csv_raw_and_metadata_columns() {
    use rdkafka::message::{Header, OwnedHeaders};
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("fmt", 1).await;
    let producer = broker.producer();
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let payload = format!("{i},{name}");
        let key = format!("k{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "h",
            value: Some(name.as_bytes()),
        });
        producer
            .send(
                FutureRecord::to("fmt")
                    .partition(0)
                    .key(&key)
                    .payload(&payload)
                    .timestamp(1_700_000_000_000 + i as i64)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let job = |format: &str, schema: &str, exprs: &str| {
        format!(
            r#"{{
  "name": "kafka-formats",
  "checkpoint": {{ "interval_ms": 300 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{}",
       "topic": "fmt", "format": "{format}", {schema} "metadata_columns": true, "bounded": true }},
    {{ "id": "pick", "type": "project", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "exprs": [{exprs}] }},
    {{ "id": "out", "type": "file_sink", "parallelism": 1, "inputs": [{{ "from": "pick" }}],
       "path": "{{out}}", "format": "jsonl" }}
  ]
}}"#,
            broker.addr()
        )
    };
    let mut csv = run_to_jsonl(&job(
        "csv",
        r#""schema": [["id", "int64"], ["name", "string"]],"#,
        r#"{ "expr": "id", "as": "id" }, { "expr": "name", "as": "name" },
           { "expr": "CAST(_key AS VARCHAR)", "as": "k" }, { "expr": "_partition", "as": "p" },
           { "expr": "_offset", "as": "o" }, { "expr": "_timestamp", "as": "ts" },
           { "expr": "_headers", "as": "h" }"#,
    ));
    csv.sort_by_key(|r| r["id"].as_i64());
    eprintln!("kafka-formats csv: {csv:?}");
    assert_eq!(csv.len(), 3);
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let r = &csv[i];
        assert_eq!(r["id"], i as i64);
        assert_eq!(r["name"], *name);
        assert_eq!(r["k"], format!("k{i}"));
        assert_eq!(
            (r["p"].as_i64(), r["o"].as_i64()),
            (Some(0), Some(i as i64))
        );
        assert_eq!(r["ts"], 1_700_000_000_000i64 + i as i64);
        let headers: serde_json::Value =
            serde_json::from_str(r["h"].as_str().expect("headers text")).expect("headers json");
        assert_eq!(headers["h"], *name);
    }
    let mut raw = run_to_jsonl(&job(
        "raw",
        "",
        r#"{ "expr": "CAST(value AS VARCHAR)", "as": "v" }, { "expr": "_offset", "as": "o" }"#,
    ));
    raw.sort_by_key(|r| r["o"].as_i64());
    let values: Vec<&str> = raw.iter().filter_map(|r| r["v"].as_str()).collect();
    assert_eq!(values, vec!["0,alpha", "1,beta", "2,gamma"]);
}
