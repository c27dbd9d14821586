//! `weir-bench --kafka HOST:PORT`: Kafka → Kafka throughput (exactly-once and at-least-once
//! sinks) and the latency that exactly-once delivery adds, against a running broker.
//!
//! * throughput: a generator job fills topic `in` with N JSON events; then `weir run` reads it
//!   (bounded) and writes topic `out`, with checkpoints every second; events per second (wall)
//!   and per core (the weir process's CPU seconds; the broker's are reported apart);
//! * latency: a rate-limited generator writes to a topic while this harness reads it with a
//!   read-committed consumer; latency = time seen − the message's timestamp (set by the
//!   sink's producer when it sent the record), so it is exactly the delay the sink's
//!   transactions add on top of producing.

use super::{median, spawn, usage, wait_sampled};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn create_topic(broker: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create topics");
    for r in res {
        r.expect("topic created");
    }
}

fn write_job(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, text).expect("write job");
    p.to_str().expect("utf8").to_string()
}

/// `weir run JOB` to its end; returns (wall seconds, CPU seconds of the weir process).
fn run(job: &str, dir: &Path) -> (f64, f64) {
    let start = Instant::now();
    let mut child = spawn(
        &[
            "run",
            job,
            "--progress",
            "0",
            "--state-dir",
            dir.join("state").to_str().expect("utf8"),
        ],
        true,
    );
    let u = wait_sampled(&mut child);
    (start.elapsed().as_secs_f64(), u.cpu_secs)
}

fn sink(broker: &str, topic: &str, guarantee: &str) -> String {
    format!(
        r#""type": "kafka_sink", "bootstrap_servers": "{broker}", "topic": "{topic}", "format": "json", "guarantee": "{guarantee}""#
    )
}

/// Fills `topic` with `events` JSON events (id, key, value) from the generator.
fn fill(broker: &str, topic: &str, events: u64, dir: &Path) {
    let job = format!(
        r#"{{"name": "fill", "guarantee": "at_least_once", "checkpoint": {{"interval_ms": 1000}},
"operators": [
 {{"id": "g", "type": "generator", "count": {events}, "keys": 100000}},
 {{"id": "p", "type": "project", "inputs": [{{"from": "g"}}], "exprs": [{{"expr": "id", "as": "id"}}, {{"expr": "key", "as": "key"}}, {{"expr": "value", "as": "value"}}]}},
 {{"id": "o", "inputs": [{{"from": "p"}}], {}}}]}}"#,
        sink(broker, topic, "at_least_once")
    );
    let (wall, _) = run(&write_job(dir, "fill", &job), dir);
    println!("filled {topic} with {events} events in {wall:.1} s");
}

pub fn bench(broker: &str, events: u64, runs: usize, broker_pid: Option<u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let input = format!("bench-in-{tag}");
    create_topic(broker, &input, 4);
    fill(broker, &input, events, dir.path());
    println!(
        "{:<34} {:>12} {:>14} {:>8} {:>12}",
        "Kafka -> Kafka", "events/s", "events/s/core", "wall s", "broker cpu s"
    );
    for (label, guarantee, sink_guarantee) in [
        (
            "exactly-once, checkpoints 1 s",
            "exactly_once",
            "exactly_once",
        ),
        (
            "at-least-once, checkpoints 1 s",
            "at_least_once",
            "at_least_once",
        ),
    ] {
        let (mut walls, mut cores, mut brokers) = (vec![], vec![], vec![]);
        for r in 0..runs {
            let out = format!("bench-out-{tag}-{sink_guarantee}-{r}");
            create_topic(broker, &out, 4);
            let job = format!(
                r#"{{"name": "k2k", "guarantee": "{guarantee}", "checkpoint": {{"interval_ms": 1000}},
"operators": [
 {{"id": "in", "type": "kafka_source", "bootstrap_servers": "{broker}", "topic": "{input}", "format": "json", "bounded": true,
   "schema": [["id", "int64"], ["key", "int64"], ["value", "int64"]]}},
 {{"id": "out", "inputs": [{{"from": "in"}}], {}}}]}}"#,
                sink(broker, &out, sink_guarantee)
            );
            let before = broker_pid
                .and_then(usage)
                .map(|u| u.cpu_secs)
                .unwrap_or(0.0);
            let (wall, cpu) = run(&write_job(dir.path(), "k2k", &job), dir.path());
            let after = broker_pid
                .and_then(usage)
                .map(|u| u.cpu_secs)
                .unwrap_or(0.0);
            walls.push(wall);
            cores.push(events as f64 / cpu.max(1e-9));
            brokers.push(after - before);
        }
        let wall = median(walls);
        println!(
            "{:<34} {:>12.0} {:>14.0} {:>8.2} {:>12.2}",
            label,
            events as f64 / wall,
            median(cores),
            wall,
            median(brokers)
        );
    }
    for (label, guarantee) in [
        ("exactly-once, checkpoints 1 s", "exactly_once"),
        ("at-least-once, checkpoints 1 s", "at_least_once"),
    ] {
        let topic = format!("bench-lat-{tag}-{guarantee}");
        create_topic(broker, &topic, 1);
        let job = format!(
            r#"{{"name": "lat", "guarantee": "{guarantee}", "checkpoint": {{"interval_ms": 1000}},
"operators": [
 {{"id": "g", "type": "generator", "count": 400000, "rate": 20000, "keys": 1000}},
 {{"id": "o", "inputs": [{{"from": "g"}}], {}}}]}}"#,
            sink(broker, &topic, guarantee)
        );
        let path = write_job(dir.path(), "lat", &job);
        let mut child = spawn(
            &[
                "run",
                &path,
                "--progress",
                "0",
                "--state-dir",
                dir.path().join("state").to_str().expect("utf8"),
            ],
            true,
        );
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .set("group.id", format!("bench-{tag}"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut lat_ms: Vec<f64> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while lat_ms.len() < 400_000 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                if let Some(ts) = m.timestamp().to_millis() {
                    lat_ms.push((now - ts) as f64);
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        lat_ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            lat_ms
                .get(((lat_ms.len() as f64 * p) as usize).min(lat_ms.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "latency {label:<32} {} records seen: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            lat_ms.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
}
