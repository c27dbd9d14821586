//! Kafka connectors against a real Kafka-compatible broker (tansu, started per test; see
//! `tests/common/kafka.rs` and `docs/kafka.md`).

mod common;

use common::kafka::Broker;
use common::*;
use rdkafka::producer::FutureRecord;
use std::time::Duration;

const SEED: u64 = 42;

/// A streaming job: kafka topic `events` (JSON `{"id", "key"}`) → hash(key) → running count →
/// (id, key, n) → exactly-once CSV file sink, checkpoints every second.
fn kafka_count_job(broker: &str, out: &std::path::Path) -> String {
    format!(
        r#"{{
  "name": "kafka-count",
  "checkpoint": {{ "interval_ms": 1000 }},
  "restart": {{ "fixed_delay": {{ "attempts": 10, "delay_ms": 200 }} }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 2, "bootstrap_servers": "{broker}",
       "topic": "events", "format": "json", "schema": [["id", "int64"], ["key", "int64"]] }},
    {{ "id": "counts", "type": "keyed_aggregate", "parallelism": 2,
       "inputs": [{{ "from": "events", "partition": {{ "hash": ["key"] }} }}],
       "keys": ["key"], "aggregates": [{{ "fn": "count", "as": "n" }}] }},
    {{ "id": "out", "type": "file_sink", "parallelism": 2, "inputs": [{{ "from": "counts" }}],
       "path": "{}", "format": "csv" }}
  ]
}}"#,
        out.display()
    )
}

/// Produces events `0..count` (keys as the generator would make them) over about `secs`.
async fn produce_events(broker: &Broker, count: u64, keys: u64, secs: u64) {
    let producer = broker.producer();
    let chunk = 5_000;
    let pause = Duration::from_millis(secs * 1000 * chunk / count.max(1));
    let mut id = 0;
    while id < count {
        let mut pending = Vec::new();
        for i in id..(id + chunk).min(count) {
            let payload = format!(r#"{{"id":{i},"key":{}}}"#, expected_key(i, SEED, keys));
            let key = i.to_string();
            // `send_result` only enqueues (the record is copied), so many can be in flight.
            let mut record = FutureRecord::to("events").payload(&payload).key(&key);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((_, back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        for p in pending {
            p.await.expect("delivery report").expect("delivered");
        }
        id += chunk;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_to_exactly_once_files_survives_task_manager_kill() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    let (count, keys) = (400_000u64, 1_000u64);
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let id = client
        .submit_json(&kafka_count_job(&broker.addr(), &out), None)
        .await
        .expect("submit");
    let producing = produce_events(&broker, count, keys, 12);
    let disrupt = async {
        wait_until(&client, &id, 60, "checkpoints", |s| {
            s.state == "RUNNING" && completed_checkpoints(s) >= 3
        })
        .await;
        cluster.kill_tm(0);
        cluster.start_tm(2);
        wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
    };
    tokio::join!(producing, disrupt);
    // A streaming job does not end: wait until everything produced is committed, then for two
    // more checkpoints (anything doubled would show up), then cancel.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while (read_committed(&out).len() as u64) < count {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!(
                "only {} of {count} rows committed",
                read_committed(&out).len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let now = completed_checkpoints(&client.status(&id).await.expect("status"));
    wait_until(&client, &id, 60, "two more checkpoints", |s| {
        completed_checkpoints(s) >= now + 2
    })
    .await;
    let status = client.status(&id).await.expect("status");
    client.cancel(&id).await.expect("cancel");
    let check = check_output(&read_committed(&out), count, keys, SEED);
    eprintln!(
        "kafka-source: {} rows, {} missing, {} duplicated, {} keys with wrong counts, {} restarts",
        check.rows, check.missing, check.duplicated, check.bad_counts, status.restarts
    );
    assert!(status.restarts >= 1, "the kill must have caused a restart");
    check.assert_exact(count);
}

/// An unreachable broker fails the start with its address, not a hang.
#[test]
fn unreachable_broker_fails_the_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let job = kafka_count_job(&format!("127.0.0.1:{port}"), &dir.path().join("out")).replace(
        r#""restart": { "fixed_delay": { "attempts": 10, "delay_ms": 200 } }"#,
        r#""restart": "none""#,
    );
    let job = job.replace(
        r#""format": "json","#,
        r#""format": "json", "connect_timeout_ms": 2000,"#,
    );
    let path = dir.path().join("job.json");
    std::fs::write(&path, job).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(weir())
        .args(["run", path.to_str().unwrap(), "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
