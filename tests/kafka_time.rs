//! Event time over Kafka against a real Kafka-compatible broker (tansu, started per test):
//! watermarks per partition, and watermark alignment with a producer that lags.

mod common;

use common::kafka::Broker;
use common::*;
use rdkafka::producer::FutureRecord;
use std::time::Duration;

/// Kafka `timed` (2 partitions, JSON `{"k", "ts"}`) with a watermark on `ts` → 10 s tumbling
/// count per `k` → exactly-once CSV files.
fn kafka_event_time_job(broker: &str, out: &std::path::Path) -> String {
    format!(
        r#"{{
  "name": "kafka-event-time",
  "checkpoint": {{ "interval_ms": 500 }},
  "operators": [
    {{ "id": "events", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{broker}",
       "topic": "timed", "format": "json", "schema": [["k", "int64"], ["ts", "int64"]],
       "watermark": {{ "column": "ts", "delay_ms": 1000 }} }},
    {{ "id": "w", "type": "window_aggregate", "parallelism": 1,
       "inputs": [{{ "from": "events", "partition": {{ "hash": ["k"] }} }}],
       "keys": ["k"], "time": "ts", "size_ms": 10000, "aggregates": [{{ "fn": "count", "as": "n" }}] }},
    {{ "id": "out", "type": "file_sink", "parallelism": 1, "inputs": [{{ "from": "w" }}],
       "path": "{}", "format": "csv" }}
  ]
}}"#,
        out.display()
    )
}

/// The last column (the count) of every committed row of a CSV file sink folder.
fn committed_counts(dir: &std::path::Path) -> Vec<i64> {
    committed_lines(dir)
        .iter()
        .filter_map(|line| line.rsplit(',').next().and_then(|n| n.parse().ok()))
        .collect()
}

/// Watermarks per Kafka partition: one subtask reads two partitions, and partition 1's
/// events arrive only after partition 0 has delivered a whole minute of event time. With a
/// watermark over the subtask (the largest time seen minus the delay), partition 1's rows
/// would all be late and dropped by the window; with one per partition the watermark waits
/// for partition 1 (which has no data yet), so every window counts both partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_watermarks_are_per_partition() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("timed", 2).await;
    let mut cluster = TestCluster::new();
    cluster.start_tm(3);
    let client = cluster.wait_slots(3).await;
    let out = cluster.path("out");
    let id = client
        .submit_json(&kafka_event_time_job(&broker.addr(), &out), None)
        .await
        .expect("submit");
    wait_until(
        &client,
        &id,
        60,
        "the job running through a checkpoint",
        |s| s.state == "RUNNING" && completed_checkpoints(s) >= 1,
    )
    .await;
    let producer = broker.producer();
    let send = |partition: i32, ts: i64| {
        let payload = format!(r#"{{"k":1,"ts":{ts}}}"#);
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::<(), _>::to("timed")
                        .partition(partition)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    };
    // A minute of event time on partition 0 (100 events per 10 s window) ...
    for i in 0..600 {
        send(0, i * 100).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // ... then the same minute on partition 1, then an event far ahead on both, which moves
    // the watermark past the minute.
    for i in 0..600 {
        send(1, i * 100 + 50).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    send(0, 1_000_000).await;
    send(1, 1_000_000).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while committed_counts(&out).len() < 6 {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("windows committed: {:?}", committed_counts(&out));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client.cancel(&id).await.expect("cancel");
    let counts = committed_counts(&out);
    eprintln!("kafka-event-time: window counts {counts:?}");
    assert_eq!(
        counts,
        vec![200; 6],
        "each 10 s window holds 100 events of each partition"
    );
}

/// Watermark alignment over Kafka: a topic already full of four minutes of event time and a
/// topic whose producer writes the same minutes live, slowly. Both tables are in one
/// alignment group with a 5 s drift, so the reader of the full topic must not run ahead of
/// the live one by more than the drift (it waits, still checkpointing), and still reads
/// everything once the live producer is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_kafka_sources_wait_for_a_lagging_producer() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("ahead", 1).await;
    broker.create_topic("behind", 1).await;
    let producer = broker.producer();
    let send = |topic: &'static str, ts: i64| {
        let payload = format!(r#"{{"k":1,"ts":{ts}}}"#);
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic).payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    };
    // 240 s of event time, 10 records per second of it.
    const RECORDS: i64 = 2400;
    for i in 0..RECORDS {
        send("ahead", i * 100).await;
    }
    let mut cluster = TestCluster::new();
    cluster.start_tm(4);
    let client = cluster.wait_slots(4).await;
    // Each topic read by its own source (batches of 100 records, 10 s of event time) into
    // a blackhole; JSON, so the alignment appears as the job file spells it.
    let source = |name: &str| {
        format!(
            r#"{{ "id": "{name}", "type": "kafka_source", "parallelism": 1, "bootstrap_servers": "{}",
       "topic": "{name}", "format": "json", "schema": [["k", "int64"], ["ts", "int64"]],
       "batch_size": 100,
       "watermark": {{ "column": "ts", "delay_ms": 1000,
                      "alignment": {{ "group": "g", "max_drift_ms": 5000 }} }} }},
    {{ "id": "{name}_out", "type": "blackhole_sink", "parallelism": 1, "inputs": [{{ "from": "{name}" }}] }}"#,
            broker.addr()
        )
    };
    let job = format!(
        r#"{{ "name": "aligned-kafka", "checkpoint": {{ "interval_ms": 1000 }},
  "operators": [ {}, {} ] }}"#,
        source("ahead"),
        source("behind")
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    let read = |s: &weir_client::JobStatus, table: &str| {
        s.vertices
            .iter()
            .find(|v| v.name.starts_with(table))
            .map(|v| (v.records_in, v.alignment_paused_ms))
            .unwrap_or_default()
    };
    // The live producer: 20 s of event time per second, in steps of 2 s; after each step,
    // what the other source has read is checked against what the live one could have.
    let mut worst_lead = i64::MIN;
    let mut paused = 0;
    for step in 0..120 {
        for i in step * 20..(step + 1) * 20 {
            send("behind", i * 100).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = client.status(&id).await.expect("status");
        assert_eq!(s.state, "RUNNING", "{}", s.failure);
        let (ahead, p) = read(&s, "ahead");
        paused = paused.max(p);
        // Records the live topic holds so far, and those the other source read, as event
        // time (100 ms apart).
        let lead = ahead as i64 * 100 - (step + 1) * 20 * 100;
        worst_lead = worst_lead.max(lead);
    }
    // Everything is in both topics now: the waiting source catches up.
    wait_until(&client, &id, 60, "both sources read to the end", |s| {
        read(s, "ahead").0 == RECORDS as u64 && read(s, "behind").0 == RECORDS as u64
    })
    .await;
    let s = client.status(&id).await.expect("status");
    paused = paused.max(read(&s, "ahead").1);
    client.cancel(&id).await.expect("cancel");
    eprintln!(
        "aligned-kafka: the full topic's reader was at most {worst_lead} ms of event time ahead of the live topic's end; it waited {paused} ms"
    );
    // The drift, plus the delay between the two watermarks' sources and a fetch batch, and
    // the status's counters being up to a heartbeat old.
    assert!(
        worst_lead <= 20_000,
        "read {worst_lead} ms of event time ahead of what the live topic held"
    );
    assert!(
        paused >= 5_000,
        "the reader waited for the live topic: {paused} ms"
    );
}
