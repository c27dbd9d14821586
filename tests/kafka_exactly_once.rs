//! End-to-end exactly-once jobs reading Kafka (tansu, started per test; see
//! `tests/common/kafka.rs` and `docs/kafka.md`): into files with a task manager killed (and
//! the source's consumer group at the topic's end), into PostgreSQL through a job-manager
//! restart, into Kafka with the source's offsets committed inside the sink's transactions
//! (through a task-manager kill), a restart that waits for the failed attempt's commit in
//! flight, and a busy Kafka → Kafka chain that must finish on its first attempt.

mod common;

use common::kafka::Broker;
use common::kafka_jobs::{kafka_count_job, produce_events, SEED};
use common::pg::PgServer;
use common::*;
use std::time::Duration;

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
