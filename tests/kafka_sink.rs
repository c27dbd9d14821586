//! The Kafka sink against a real Kafka-compatible broker (tansu, started per test; see
//! `tests/common/kafka.rs` and `docs/kafka.md`): its CSV and raw formats, at-least-once
//! through a task-manager kill, and exactly-once (Kafka → Kafka) through a task-manager kill
//! and a crash inside its commit window. Output is read with `tests/common/kafka_raw`.

mod common;

use common::kafka::Broker;
use common::kafka_jobs::{produce_events, SEED};
use common::*;
use rdkafka::producer::FutureRecord;
use std::time::Duration;

/// The sink's CSV format (one line per row, no header, quoted as CSV needs) and raw format
/// (the single column's bytes), with a key column, exactly-once, read back with the test's
/// own read-committed reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sink_writes_csv_and_raw_messages() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("rows", 1).await;
    let names = ["alpha", "be,ta", "ga\"mma"];
    let producer = broker.producer();
    for (i, name) in names.iter().enumerate() {
        let payload = serde_json::json!({ "id": i, "name": name }).to_string();
        producer
            .send(
                FutureRecord::<(), _>::to("rows")
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    broker.create_topic("out-csv", 1).await;
    broker.create_topic("out-raw", 1).await;
    let run = |topic: &str, format: &str, exprs: &str| {
        let job = format!(
            r#"{{
  "name": "kafka-sink-{format}",
  "checkpoint": {{ "interval_ms": 300 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{addr}",
       "topic": "rows", "format": "json", "schema": [["id", "int64"], ["name", "string"]],
       "bounded": true }},
    {{ "id": "pick", "type": "project", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "exprs": [{exprs}] }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 1, "inputs": [{{ "from": "pick" }}],
       "bootstrap_servers": "{addr}", "topic": "{topic}", "format": "{format}", "key": "name",
       "guarantee": "exactly_once" }}
  ]
}}"#,
            addr = broker.addr()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let result = weir_run(dir.path(), &job);
        assert!(result.ok, "{}", result.text);
        let mut records =
            common::kafka_raw::read_committed(&broker.addr(), topic, &[0]).expect("read");
        records.sort_by_key(|r| r.offset);
        records
            .iter()
            .map(|r| {
                let text = |b: &Option<Vec<u8>>| String::from_utf8(b.clone().unwrap_or_default());
                (
                    text(&r.key).expect("utf8 key"),
                    text(&r.value).expect("utf8 value"),
                )
            })
            .collect::<Vec<_>>()
    };
    let csv = run(
        "out-csv",
        "csv",
        r#"{ "expr": "id", "as": "id" }, { "expr": "name", "as": "name" }"#,
    );
    eprintln!("kafka-sink csv: {csv:?}");
    let expected: Vec<(String, String)> = vec![
        ("alpha".into(), "0,alpha".into()),
        ("be,ta".into(), "1,\"be,ta\"".into()),
        ("ga\"mma".into(), "2,\"ga\"\"mma\"".into()),
    ];
    assert_eq!(csv, expected);
    let raw = run("out-raw", "raw", r#"{ "expr": "name", "as": "name" }"#);
    eprintln!("kafka-sink raw: {raw:?}");
    let expected: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), n.to_string()))
        .collect();
    assert_eq!(raw, expected);
}

/// The Kafka sink's at-least-once mode (idempotent producer, flushed at every barrier) loses
/// nothing when a task manager is killed; the replay after the restore may duplicate, and the
/// test says how many it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sink_at_least_once_loses_nothing_after_a_kill() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("alo", 2).await;
    let count = 100_000u64;
    let sink = format!(
        r#""type": "kafka_sink", "bootstrap_servers": "{}", "topic": "alo", "format": "json", "guarantee": "at_least_once""#,
        broker.addr()
    );
    let job = count_job_into("kafka-alo", "at_least_once", count, 1_000, 10_000, &sink, 2);
    let mut cluster = TestCluster::new();
    cluster.start_tm(4);
    cluster.start_tm(4);
    let client = cluster.wait_slots(8).await;
    let id = client.submit_json(&job, None).await.expect("submit");
    kill_tm_mid_run(&mut cluster, &client, &id, 3, 0, 4).await;
    wait_until(&client, &id, 180, "the job to finish", |s| {
        s.state == "FINISHED"
    })
    .await;
    let status = client.status(&id).await.expect("status");
    let parts = common::kafka_raw::partitions(&broker.addr(), "alo").expect("partitions");
    let log = common::kafka_raw::read_all_raw(&broker.addr(), "alo", &parts).expect("read");
    let mut seen = std::collections::BTreeMap::<i64, usize>::new();
    for r in log.committed_records() {
        let v: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("json");
        *seen.entry(v["id"].as_i64().expect("id")).or_default() += 1;
    }
    let missing = (0..count as i64).filter(|i| !seen.contains_key(i)).count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "kafka-at-least-once: {} records for {count} ids after {} restarts: {duplicated} ids duplicated (allowed), {missing} missing",
        seen.values().sum::<usize>(),
        status.restarts
    );
    assert!(status.restarts >= 1, "the kill must have caused a restart");
    assert_eq!(missing, 0, "at-least-once must not lose records");
    assert_eq!(seen.len() as u64, count, "no id beyond the input");
}

/// kafka `events` → hash(key) → running count → exactly-once kafka sink `counts` (JSON).
/// The exactly-once Kafka sinks of these tests use the `fixed` partitioner, so the two sink
/// subtasks' transactions never share a partition: tansu 0.6.0 defers a commit's offsets (the
/// sink's commit marker, the source offsets) while another producer's transaction on the same
/// partition is open, and never applies them if that one is left behind by a killed process
/// (`tests/kafka-probe/README.md` section h). Kafka does neither.
fn kafka_to_kafka_job(broker: &str) -> String {
    format!(
        r#"{{
  "name": "kafka-to-kafka",
  "checkpoint": {{ "interval_ms": 1000 }},
  "restart": {{ "fixed_delay": {{ "attempts": 10, "delay_ms": 200 }} }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 2, "bootstrap_servers": "{broker}",
       "topic": "events", "format": "json", "schema": [["id", "int64"], ["key", "int64"]] }},
    {{ "id": "counts", "type": "keyed_aggregate", "parallelism": 2,
       "inputs": [{{ "from": "events", "partition": {{ "hash": ["key"] }} }}],
       "keys": ["key"], "aggregates": [{{ "fn": "count", "as": "n" }}] }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 2, "inputs": [{{ "from": "counts" }}],
       "bootstrap_servers": "{broker}", "topic": "counts", "format": "json", "key": "key",
       "partitioner": "fixed" }}
  ]
}}"#
    )
}

/// (id, key, n) of every record a read-committed reader of `counts` sees, applying the
/// read-committed rules itself (tansu serves aborted records); and the raw log's counts of
/// aborted and still-open records.
fn read_counts(broker: &Broker) -> (Vec<(i64, i64, i64)>, usize, usize) {
    let parts = common::kafka_raw::partitions(&broker.addr(), "counts").expect("partitions");
    let log = common::kafka_raw::read_all_raw(&broker.addr(), "counts", &parts).expect("read");
    let rows = log
        .committed_records()
        .iter()
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("json");
            (
                v["id"].as_i64().expect("id"),
                v["key"].as_i64().expect("key"),
                v["n"].as_i64().expect("n"),
            )
        })
        .collect();
    (rows, log.aborted_count(), log.open_count())
}

/// Waits until `count` committed rows are in `counts`, then two more checkpoints, cancels the
/// job and checks the output record by record.
async fn settle_and_check(
    cluster: &TestCluster,
    client: &weir_client::Client,
    id: &str,
    broker: &Broker,
    count: u64,
    keys: u64,
    name: &str,
) -> weir_client::JobStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (rows, _, _) = read_counts(broker);
        if rows.len() as u64 >= count {
            break;
        }
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("only {} of {count} rows committed to counts", rows.len());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let now = completed_checkpoints(&client.status(id).await.expect("status"));
    wait_until(client, id, 60, "two more checkpoints", |s| {
        completed_checkpoints(s) >= now + 2
    })
    .await;
    let status = client.status(id).await.expect("status");
    client.cancel(id).await.expect("cancel");
    let (rows, aborted, open) = read_counts(broker);
    let check = check_output(&rows, count, keys, SEED);
    eprintln!(
        "{name}: {} committed rows, {} missing, {} duplicated, {} keys with wrong counts, {} restarts; the broker also served {aborted} aborted and {open} open records, which a read-committed reader must skip",
        check.rows, check.missing, check.duplicated, check.bad_counts, status.restarts
    );
    check.assert_exact(count);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_kafka_exactly_once_survives_task_manager_kill() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    broker.create_topic("counts", 3).await;
    let (count, keys) = (300_000u64, 1_000u64);
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let id = client
        .submit_json(&kafka_to_kafka_job(&broker.addr()), None)
        .await
        .expect("submit");
    let producing = produce_events(&broker, count, keys, 12);
    let disrupt = kill_tm_mid_run(&mut cluster, &client, &id, 3, 0, 2);
    tokio::join!(producing, disrupt);
    let status = settle_and_check(
        &cluster,
        &client,
        &id,
        &broker,
        count,
        keys,
        "kafka-to-kafka",
    )
    .await;
    assert!(status.restarts >= 1, "the kill must have caused a restart");
}

/// The commit window: the task manager dies after a checkpoint completed and before its
/// transaction's commit reached the broker. The broker then holds that transaction open; the
/// restored sink fences it (aborting it), finds the commit marker behind the checkpoint, and
/// re-sends the epoch from the checkpoint's write-ahead copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sink_crash_between_checkpoint_and_commit_loses_and_doubles_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    broker.create_topic("counts", 3).await;
    let (count, keys) = (200_000u64, 1_000u64);
    let mut cluster = TestCluster::new();
    let doomed = cluster.start_tm_env(4, &[("WEIR_FAILPOINTS", "kafka_sink_commit@3")]);
    let client = cluster.wait_slots(4).await;
    let id = client
        .submit_json(&kafka_to_kafka_job(&broker.addr()), None)
        .await
        .expect("submit");
    let producing = produce_events(&broker, count, keys, 10);
    let disrupt = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while cluster.tms[doomed]
            .child
            .try_wait()
            .expect("wait")
            .is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the failpoint never fired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, _, open) = read_counts(&broker);
        eprintln!("after the crash: {open} records in open transactions");
        assert!(
            open > 0,
            "the crash must leave a pre-committed transaction open on the broker"
        );
        cluster.start_tm(4);
        wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
    };
    tokio::join!(producing, disrupt);
    settle_and_check(&cluster, &client, &id, &broker, count, keys, "kafka-window").await;
    // The restored sink must have re-sent at least one epoch from its write-ahead copy.
    let logs: String = std::fs::read_dir(cluster.dir.path())
        .expect("logs")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let resent: u64 = logs
        .lines()
        .filter(|l| l.contains("kafka sink recovered"))
        .filter_map(|l| {
            let plain = strip_ansi(l);
            let i = plain.find("resent=")?;
            let digits: String = plain[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse::<u64>().ok()
        })
        .sum();
    eprintln!("kafka-window: {resent} epochs re-sent from write-ahead copies");
    assert!(resent > 0, "recovery must have re-sent the lost epoch");
}
