//! Kafka connectors against a real Kafka-compatible broker (tansu, started per test; see
//! `tests/common/kafka.rs` and `docs/kafka.md`).

mod common;

use common::kafka::Broker;
use common::pg::PgServer;
use common::*;
use rdkafka::producer::{FutureRecord, Producer};
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
       "topic": "events", "group_id": "weir-monitor", "format": "json", "schema": [["id", "int64"], ["key", "int64"]] }},
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
    let disrupt = kill_tm_mid_run(&mut cluster, &client, &id, 3, 0, 2);
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
    // After the last checkpoints, the consumer group (monitoring only) sits at the end.
    let committed = group_offsets(&broker, "weir-monitor", "events", 3);
    eprintln!("kafka-source: consumer group weir-monitor committed {committed:?}");
    assert_eq!(committed.iter().sum::<i64>(), count as i64, "{committed:?}");
}

/// The committed offsets of `group` for partitions `0..partitions` of `topic`.
fn group_offsets(broker: &Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => 0,
        })
        .collect()
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
    let run = weir_run(dir.path(), &job);
    let text = &run.text;
    assert!(!run.ok, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
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

/// A job manager killed and restarted in the middle of a Kafka → PostgreSQL (exactly-once) job:
/// the new job manager resumes the job from its last checkpoint; the table ends up exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_postgres_survives_job_manager_restart() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(pg) = PgServer::start() else { return };
    broker.create_topic("events", 3).await;
    let (count, keys) = (300_000u64, 1_000u64);
    let job = kafka_count_job(&broker.addr(), std::path::Path::new("unused")).replace(
        r#""type": "file_sink", "parallelism": 2, "inputs": [{ "from": "counts" }],
       "path": "unused", "format": "csv""#,
        &format!(
            r#""type": "postgres_sink", "parallelism": 2, "inputs": [{{ "from": "counts" }}],
       "url": "{}", "table": "counts", "create_table": true"#,
            pg.url()
        ),
    );
    assert!(job.contains("postgres_sink"), "{job}");
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let id = client.submit_json(&job, None).await.expect("submit");
    let producing = produce_events(&broker, count, keys, 12);
    let disrupt = async {
        wait_until(&client, &id, 60, "checkpoints", |s| {
            s.state == "RUNNING" && completed_checkpoints(s) >= 3
        })
        .await;
        cluster.kill_jm();
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.start_jm();
    };
    tokio::join!(producing, disrupt);
    let client = cluster.client().await;
    wait_until(
        &client,
        &id,
        60,
        "the job back under the new job manager",
        |s| s.state == "RUNNING",
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let table_rows = || async {
        pg.client()
            .await
            .query_one("SELECT count(*) FROM counts", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    while (table_rows().await as u64) < count {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("only {} of {count} rows in the table", table_rows().await);
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
    let rows: Vec<(i64, i64, i64)> = pg
        .client()
        .await
        .query("SELECT id, key, n FROM counts", &[])
        .await
        .expect("read table")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let check = check_output(&rows, count, keys, SEED);
    eprintln!(
        "kafka-to-postgres, JM restart: {} rows, {} missing, {} duplicated, {} keys with wrong counts, attempt {} ",
        check.rows, check.missing, check.duplicated, check.bad_counts, status.attempt
    );
    check.assert_exact(count);
}

/// kafka `events` (with metadata columns) → (id, partition, offset) → exactly-once kafka sink
/// `copy`, all in one task per subtask, committing the source's offsets to the consumer group
/// `copy-offsets` inside its transactions (the seed's Kafka-to-Kafka example).
fn kafka_copy_job(broker: &str) -> String {
    format!(
        r#"{{
  "name": "kafka-copy",
  "checkpoint": {{ "interval_ms": 1000 }},
  "restart": {{ "fixed_delay": {{ "attempts": 10, "delay_ms": 200 }} }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 2, "bootstrap_servers": "{broker}",
       "topic": "events", "format": "json", "schema": [["id", "int64"], ["key", "int64"]],
       "metadata_columns": true }},
    {{ "id": "pick", "type": "project", "parallelism": 2, "inputs": [{{ "from": "events" }}],
       "exprs": [{{ "expr": "id", "as": "id" }}, {{ "expr": "_partition", "as": "p" }},
                 {{ "expr": "_offset", "as": "o" }}] }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 2, "inputs": [{{ "from": "pick" }}],
       "bootstrap_servers": "{broker}", "topic": "copy", "format": "json",
       "commit_source_offsets": "copy-offsets", "partitioner": "fixed" }}
  ]
}}"#
    )
}

/// A restart waits for the failed attempt's commit in flight. The sink on the first task
/// manager pauses (failpoint, 6 s) right before its third `commit_transaction`; the other task
/// manager is killed meanwhile, so the job restarts while that commit still runs on a blocking
/// thread. The next attempt must reach the first task manager only after the commit returned:
/// its recovery (`init_transactions` with the same transactional id, then reading the commit
/// marker) would otherwise race the old producer's commit at the broker, and on tansu that race
/// can commit one epoch twice (`docs/known-issues.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_waits_for_the_failed_attempts_commit_in_flight() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 2).await;
    broker.create_topic("copy", 2).await;
    let count = 60_000u64;
    let mut cluster = TestCluster::new();
    cluster.start_tm_env(1, &[("WEIR_FAILPOINTS", "kafka_sink_end_txn@3=pause:6000")]);
    let paused_log = cluster.path("tm-1.log");
    let doomed = cluster.start_tm(1);
    let client = cluster.wait_slots(2).await;
    let id = client
        .submit_json(&kafka_copy_job(&broker.addr()), None)
        .await
        .expect("submit");
    let plain_lines = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(strip_ansi)
            .collect()
    };
    let producing = produce_events(&broker, count, 1_000, 12);
    let disrupt = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !plain_lines(&paused_log)
            .iter()
            .any(|l| l.contains("failpoint hit: pausing"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the pause point was never reached"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.kill_tm(doomed);
        cluster.start_tm(1);
        wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
    };
    tokio::join!(producing, disrupt);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while (read_copies(&broker).len() as u64) < count {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("the output never reached {count} records");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lines = plain_lines(&paused_log);
    let position = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    let pause_over = position(&|l| l.contains("failpoint pause over"));
    let redeployed = position(&|l| l.contains("deployed") && l.contains("attempt=2"));
    let copies = read_copies(&broker);
    let distinct: std::collections::BTreeSet<(i32, i64)> = copies.iter().copied().collect();
    eprintln!(
        "commit-in-flight: pause over at log line {pause_over:?}, attempt 2 deployed at line {redeployed:?}; {} committed records ({} distinct) of {count}",
        copies.len(),
        distinct.len()
    );
    client.cancel(&id).await.expect("cancel");
    if pause_over.is_none() || redeployed.is_none() || pause_over >= redeployed {
        cluster.dump_logs();
    }
    let (Some(pause_over), Some(redeployed)) = (pause_over, redeployed) else {
        panic!("the paused task manager's log lacks the pause's end or attempt 2's deployment");
    };
    assert!(
        pause_over < redeployed,
        "attempt 2 was deployed while attempt 1's commit was still paused"
    );
    assert_eq!(copies.len(), distinct.len(), "records duplicated in copy");
    assert_eq!(distinct.len() as u64, count, "records missing from copy");
}

/// (partition, offset) of the input record behind every record a read-committed reader of
/// `copy` sees (read-committed rules applied by the test, as tansu serves aborted records).
fn read_copies(broker: &Broker) -> Vec<(i32, i64)> {
    let parts = common::kafka_raw::partitions(&broker.addr(), "copy").expect("partitions");
    let log = common::kafka_raw::read_all_raw(&broker.addr(), "copy", &parts).expect("read");
    log.committed_records()
        .iter()
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("json");
            (
                v["p"].as_i64().expect("p") as i32,
                v["o"].as_i64().expect("o"),
            )
        })
        .collect()
}

/// On a failure: where the duplicated copies sit in `copy` (partition, offset, producer,
/// status) and the control markers of those partitions, for the next session to read.
fn dump_duplicates(broker: &Broker) {
    let parts = common::kafka_raw::partitions(&broker.addr(), "copy").expect("partitions");
    let log = common::kafka_raw::read_all_raw(&broker.addr(), "copy", &parts).expect("read");
    let mut seen: std::collections::BTreeMap<(i64, i64), Vec<String>> = Default::default();
    for e in &log.entries {
        let v: serde_json::Value =
            serde_json::from_slice(e.record.value.as_deref().unwrap_or_default()).expect("json");
        let key = (v["p"].as_i64().unwrap_or(-1), v["o"].as_i64().unwrap_or(-1));
        seen.entry(key).or_default().push(format!(
            "copy p{} @{} pid {} {:?}",
            e.record.partition, e.record.offset, e.record.producer_id, e.status
        ));
    }
    let dups: Vec<_> = seen
        .iter()
        .filter(|(_, v)| v.iter().filter(|x| x.contains("Committed")).count() > 1)
        .collect();
    eprintln!(
        "{} input records committed more than once; first ones:",
        dups.len()
    );
    for (k, v) in dups.iter().take(4) {
        eprintln!("  input {k:?}: {v:?}");
    }
    let ranges: std::collections::BTreeSet<String> = dups
        .iter()
        .flat_map(|(_, v)| {
            v.iter()
                .map(|x| x.split(" @").next().unwrap_or("").to_string())
        })
        .collect();
    eprintln!("  in copy partitions {ranges:?}; markers:");
    for m in &log.markers {
        eprintln!(
            "  marker p{} @{} pid {} epoch {} {}",
            m.partition,
            m.offset,
            m.producer_id,
            m.producer_epoch,
            if m.commit { "COMMIT" } else { "ABORT" }
        );
    }
}

/// Whether everything below the group's committed offset of each partition is in the
/// output: the offsets must never run ahead of the committed output. Returns the first
/// partition that breaks it, with its offset and how many of its records were there.
fn offsets_ahead_of_output(offsets: &[i64], copies: &[(i32, i64)]) -> Option<(i32, i64, usize)> {
    offsets.iter().enumerate().find_map(|(p, &committed)| {
        let seen: std::collections::BTreeSet<i64> = copies
            .iter()
            .filter(|(cp, o)| *cp == p as i32 && *o < committed)
            .map(|(_, o)| *o)
            .collect();
        (seen.len() as i64 != committed).then_some((p as i32, committed, seen.len()))
    })
}

/// The seed's example: the source's consumer-group offsets move inside the sink's
/// transactions. While the job runs (and through a task-manager kill) the group's offsets are
/// sampled and never run ahead of the committed output; at the end they sit at the end of
/// every input partition and the output holds every input record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_kafka_commits_source_offsets_inside_its_transactions() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    broker.create_topic("copy", 3).await;
    let count = 150_000u64;
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let id = client
        .submit_json(&kafka_copy_job(&broker.addr()), None)
        .await
        .expect("submit");
    let done = std::sync::atomic::AtomicBool::new(false);
    let producing = async {
        produce_events(&broker, count, 1_000, 10).await;
    };
    let sampling = async {
        let mut samples = 0;
        let mut moved = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            // offsets first, output second: the output read later must cover the offsets
            let offsets = group_offsets(&broker, "copy-offsets", "events", 3);
            let copies = read_copies(&broker);
            if let Some((p, o, seen)) = offsets_ahead_of_output(&offsets, &copies) {
                panic!("group copy-offsets committed offset {o} of partition {p}, but only {seen} of those records are in the committed output");
            }
            samples += 1;
            moved += usize::from(offsets.iter().sum::<i64>() > 0);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        (samples, moved)
    };
    let disrupt = async {
        kill_tm_mid_run(&mut cluster, &client, &id, 3, 0, 2).await;
    };
    let work = async {
        tokio::join!(producing, disrupt);
        // until every record is in the output
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while (read_copies(&broker).len() as u64) < count {
            assert!(
                std::time::Instant::now() < deadline,
                "the output never reached {count} records"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let ((), (samples, moved)) = tokio::join!(work, sampling);
    let now = completed_checkpoints(&client.status(&id).await.expect("status"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while completed_checkpoints(&client.status(&id).await.expect("status")) < now + 2 {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!(
                "no two more checkpoints: {:?}",
                client.status(&id).await.expect("status")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = client.status(&id).await.expect("status");
    client.cancel(&id).await.expect("cancel");

    let copies = read_copies(&broker);
    let distinct: std::collections::BTreeSet<(i32, i64)> = copies.iter().copied().collect();
    let offsets = group_offsets(&broker, "copy-offsets", "events", 3);
    let ends: Vec<i64> = (0..3)
        .map(|p| {
            distinct
                .iter()
                .filter(|(cp, _)| *cp == p)
                .map(|(_, o)| o + 1)
                .max()
                .unwrap_or(0)
        })
        .collect();
    eprintln!(
        "kafka-copy: {} committed records ({} distinct) of {count}, {} restarts; group copy-offsets at {offsets:?}, input ends {ends:?}; {samples} samples during the run ({moved} with offsets), none ahead of the output",
        copies.len(),
        distinct.len(),
        status.restarts
    );
    if copies.len() != distinct.len() {
        dump_duplicates(&broker);
    }
    if offsets != ends {
        cluster.dump_logs();
    }
    // the fixed partitioner: sink subtask i wrote only partition i of the 3
    let raw = common::kafka_raw::read_all_raw(&broker.addr(), "copy", &[0, 1, 2]).expect("read");
    let used: std::collections::BTreeSet<i32> = raw
        .committed_records()
        .iter()
        .map(|r| r.partition)
        .collect();
    assert_eq!(used, [0, 1].into(), "partitions the sink wrote");
    assert!(status.restarts >= 1, "the kill must have caused a restart");
    assert_eq!(copies.len(), distinct.len(), "records duplicated in copy");
    assert_eq!(distinct.len() as u64, count, "records missing from copy");
    assert_eq!(offsets_ahead_of_output(&offsets, &copies), None);
    assert_eq!(
        offsets, ends,
        "the group's offsets are not at the input's end"
    );
    assert!(
        moved >= 2,
        "the group's offsets never moved while the job ran"
    );
}

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

/// A topic that does not exist fails the job's start with its name, for a source and for a
/// sink, not a hang (and is not created on the fly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_fails_the_start_clearly() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("present", 1).await;
    let run = |source_topic: &str, sink_topic: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = format!(
            r#"{{
  "name": "kafka-missing",
  "checkpoint": {{ "interval_ms": 300 }},
  "restart": "none",
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{b}",
       "topic": "{source_topic}", "format": "json", "schema": [["id", "int64"]], "bounded": true }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "bootstrap_servers": "{b}", "topic": "{sink_topic}", "format": "json" }}
  ]
}}"#,
            b = broker.addr()
        );
        let result = weir_run(dir.path(), &job);
        (result.ok, result.text, result.took)
    };
    for (source, sink, missing) in [
        ("absent-in", "present", "absent-in"),
        ("present", "absent-out", "absent-out"),
    ] {
        let (ok, text, took) = run(source, sink);
        eprintln!("kafka-missing: {missing}: failed={} in {took:?}", !ok);
        assert!(
            !ok,
            "a missing topic {missing:?} must fail the job:\n{text}"
        );
        assert!(
            text.contains(&format!("topic \"{missing}\"")),
            "the error names the topic {missing:?}:\n{text}"
        );
        assert!(took < Duration::from_secs(60), "took {took:?}");
    }
    let md = broker
        .producer()
        .client()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(
        !names.contains(&"absent-in") && !names.contains(&"absent-out"),
        "no topic was created on the fly: {names:?}"
    );
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

/// Credentials the broker refuses fail the start with the client's own reason (the SASL
/// failure), not a bare timeout, for a source and for a sink, and the password
/// is not printed. (This broker refuses every login: a successful SASL login cannot be shown
/// here, `docs/kafka.md`.)
#[test]
fn refused_kafka_credentials_fail_the_start_clearly() {
    let Some(broker) = Broker::start_refusing_logins() else {
        return;
    };
    // PLAIN: tansu offers SCRAM only, so the login fails at the handshake. SCRAM (with the
    // kafka-tls feature, whose librdkafka has OpenSSL): the exchange runs, and tansu keeps no
    // credentials, so it refuses the user.
    let mut mechanisms = vec!["PLAIN"];
    if cfg!(feature = "kafka-tls") {
        mechanisms.push("SCRAM-SHA-256");
    }
    for mechanism in mechanisms {
        let sasl = format!(
            r#""properties": {{ "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "{mechanism}",
       "sasl.username": "weir", "sasl.password": "not-the-password" }}"#
        );
        let source_job = format!(
            r#"{{
  "name": "kafka-refused-source",
  "checkpoint": {{ "interval_ms": 300 }},
  "restart": "none",
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{b}",
       "topic": "t", "format": "json", "schema": [["id", "int64"]], "connect_timeout_ms": 3000,
       {sasl} }},
    {{ "id": "out", "type": "stdout_sink", "parallelism": 1, "inputs": [{{ "from": "events" }}] }}
  ]
}}"#,
            b = broker.addr()
        );
        let sink_job = format!(
            r#"{{
  "name": "kafka-refused-sink",
  "checkpoint": {{ "interval_ms": 300 }},
  "restart": "none",
  "operators": [
    {{ "id": "events", "type": "generator", "parallelism": 1, "count": 10, "keys": 2 }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 1, "inputs": [{{ "from": "events" }}],
       "bootstrap_servers": "{b}", "topic": "t", "format": "json", "connect_timeout_ms": 3000,
       {sasl} }}
  ]
}}"#,
            b = broker.addr()
        );
        for job in [source_job, sink_job] {
            let dir = tempfile::tempdir().expect("tempdir");
            let out = weir_run(dir.path(), &job);
            let text = &out.text;
            let failure = text
                .lines()
                .find(|l| l.contains("cannot read metadata"))
                .unwrap_or_default()
                .to_string();
            eprintln!("kafka-refused {mechanism}: {failure}");
            assert!(!out.ok, "{text}");
            assert!(
                failure.contains("the client reported") && failure.contains("SASL"),
                "the failure gives the client's reason:\n{text}"
            );
            assert!(
                !text.contains("not-the-password"),
                "the password is printed:\n{text}"
            );
            assert!(out.took < Duration::from_secs(60), "took {:?}", out.took);
        }
    }
}

/// Kafka over TLS (feature `kafka-tls`: librdkafka with OpenSSL), against the broker behind a
/// TLS front that it advertises, so every connection of every client is encrypted: a generator
/// fills a topic, an exactly-once Kafka-to-Kafka job copies it, and the output (read raw from
/// the plaintext port) holds every record once. A client that does not trust the broker's
/// certificate fails the start with the TLS reason.
#[cfg(feature = "kafka-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_and_an_untrusted_certificate() {
    let Some(broker) = Broker::start_behind_tls() else {
        return;
    };
    broker.create_topic("in", 2).await;
    broker.create_topic("out", 2).await;
    let (ca, stranger) = broker.tls_cas().expect("behind TLS");
    let tls = |ca: &std::path::Path| {
        format!(
            r#""properties": {{ "security.protocol": "ssl", "ssl.ca.location": "{}" }}"#,
            ca.display()
        )
    };
    let count = 20_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let fill = format!(
        r#"{{"name": "tls-fill", "guarantee": "at_least_once", "checkpoint": {{"interval_ms": 500}},
"operators": [
 {{"id": "g", "type": "generator", "count": {count}, "keys": 100}},
 {{"id": "p", "type": "project", "inputs": [{{"from": "g"}}], "exprs": [{{"expr": "id", "as": "id"}}, {{"expr": "key", "as": "key"}}]}},
 {{"id": "o", "inputs": [{{"from": "p"}}], "type": "kafka_sink", "bootstrap_servers": "{addr}", "topic": "in",
   "format": "json", "guarantee": "at_least_once", {props}}}]}}"#,
        addr = broker.client_addr(),
        props = tls(&ca)
    );
    let result = weir_run(dir.path(), &fill);
    assert!(result.ok, "{}", result.text);
    let copy = |ca: &std::path::Path| {
        format!(
            r#"{{"name": "tls-copy", "guarantee": "exactly_once", "checkpoint": {{"interval_ms": 500}},
"restart": "none",
"operators": [
 {{"id": "in", "type": "kafka_source", "bootstrap_servers": "{addr}", "topic": "in", "format": "json",
   "schema": [["id", "int64"], ["key", "int64"]], "bounded": true, "connect_timeout_ms": 5000, {props}}},
 {{"id": "out", "inputs": [{{"from": "in"}}], "type": "kafka_sink", "bootstrap_servers": "{addr}", "topic": "out",
   "format": "json", "guarantee": "exactly_once", {props}}}]}}"#,
            addr = broker.client_addr(),
            props = tls(ca)
        )
    };
    let result = weir_run(dir.path(), &copy(&ca));
    assert!(result.ok, "{}", result.text);
    let records =
        common::kafka_raw::read_committed(&broker.addr(), "out", &[0, 1]).expect("read out");
    let mut ids: Vec<i64> = records
        .iter()
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("json");
            v["id"].as_i64().expect("id")
        })
        .collect();
    ids.sort_unstable();
    let distinct = {
        let mut d = ids.clone();
        d.dedup();
        d.len()
    };
    eprintln!(
        "kafka-tls: {} records copied over TLS, {distinct} distinct ids",
        ids.len()
    );
    assert_eq!((ids.len() as u64, distinct as u64), (count, count));

    let result = weir_run(dir.path(), &copy(&stranger));
    // The run's own error (its last line), not only librdkafka's log, gives the reason.
    let text = strip_ansi(&result.text);
    let reason = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .filter(|l| l.contains("certificate verify failed"))
        .map(str::to_string);
    eprintln!(
        "kafka-tls untrusted: failed={} in {:?}: {reason:?}",
        !result.ok, result.took
    );
    assert!(!result.ok, "{}", result.text);
    assert!(
        reason.is_some(),
        "the failure gives the TLS reason:\n{}",
        result.text
    );
}

/// Issue 23's scenario, with no process killed: a bounded Kafka source of 6 M JSON records in
/// 4 partitions, chained into an exactly-once Kafka sink (1 s checkpoints), on 3 task managers
/// of 2 slots each, with the default batch size. Such chains never wait, and they used to
/// starve their task manager's heartbeat until the job manager declared it lost, again and
/// again. The cluster runs with a 5 s heartbeat timeout (a tenth of the default) to keep this
/// the harsh case: the job must finish on its first attempt, every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_kafka_to_kafka_chain_finishes_on_its_first_attempt() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 4).await;
    broker.create_topic("copy", 4).await;
    let count = 6_000_000u64;
    let started = std::time::Instant::now();
    produce_events(&broker, count, 1_000, 0).await;
    eprintln!(
        "busy-chain: produced {count} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut cluster = TestCluster::with_env(&[("WEIR_HEARTBEAT_TIMEOUT_MS", "5000")]);
    for _ in 0..3 {
        cluster.start_tm(2);
    }
    let client = cluster.wait_slots(6).await;
    let job = format!(
        r#"{{
  "name": "busy-chain",
  "checkpoint": {{ "interval_ms": 1000 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 4, "bootstrap_servers": "{broker}",
       "topic": "events", "format": "json", "schema": [["id", "int64"], ["key", "int64"]],
       "metadata_columns": true, "bounded": true }},
    {{ "id": "pick", "type": "project", "parallelism": 4, "inputs": [{{ "from": "events" }}],
       "exprs": [{{ "expr": "id", "as": "id" }}, {{ "expr": "_partition", "as": "p" }},
                 {{ "expr": "_offset", "as": "o" }}] }},
    {{ "id": "out", "type": "kafka_sink", "parallelism": 4, "inputs": [{{ "from": "pick" }}],
       "bootstrap_servers": "{broker}", "topic": "copy", "format": "json", "partitioner": "fixed" }}
  ]
}}"#,
        broker = broker.addr()
    );
    let started = std::time::Instant::now();
    let id = client.submit_json(&job, None).await.expect("submit");
    let status = match client.wait(&id, Some(Duration::from_secs(900))).await {
        Ok(s) => s,
        Err(e) => {
            cluster.dump_logs();
            panic!("job did not end: {e}");
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if status.state != "FINISHED" || status.restarts > 0 {
        cluster.dump_logs();
    }
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert_eq!(status.restarts, 0, "the job restarted: {}", status.failure);
    let copies = read_copies(&broker);
    let distinct: std::collections::BTreeSet<(i32, i64)> = copies.iter().copied().collect();
    eprintln!(
        "busy-chain: FINISHED in {secs:.1} s on its first attempt, {} checkpoints; {} committed records ({} distinct) of {count}",
        completed_checkpoints(&status),
        copies.len(),
        distinct.len()
    );
    assert_eq!(copies.len(), distinct.len(), "records duplicated in copy");
    assert_eq!(distinct.len() as u64, count, "records missing from copy");
}
