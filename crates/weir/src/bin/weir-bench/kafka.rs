//! `weir-bench --kafka HOST:PORT`: Kafka → Kafka throughput (exactly-once and at-least-once
//! sinks) and the latency that exactly-once delivery adds, against a running broker.
//!
//! * throughput: a generator job fills topic `in` with N JSON events; then `weir run` reads it
//!   (bounded) and writes topic `out`, with checkpoints every second; events per second (wall)
//!   and per core (the weir process's CPU seconds; the broker's are reported apart);
//! * latency, end to end: this harness produces events at a fixed rate into an input topic,
//!   each carrying its send time, while a Kafka → Kafka job copies them to an output topic
//!   that the harness reads read-committed; latency = time seen − time sent.

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

/// `weir run JOB` to its end; returns (wall seconds, CPU seconds and peak RSS in MiB of the
/// weir process).
fn run(job: &str, dir: &Path) -> (f64, f64, f64) {
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
    (start.elapsed().as_secs_f64(), u.cpu_secs, u.peak_rss_mb)
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
    let (wall, _, _) = run(&write_job(dir, "fill", &job), dir);
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
        "{:<34} {:>12} {:>14} {:>8} {:>12} {:>12}",
        "Kafka -> Kafka", "events/s", "events/s/core", "wall s", "broker cpu s", "peak RSS MiB"
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
        let mut peak: f64 = 0.0;
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
            let (wall, cpu, rss) = run(&write_job(dir.path(), "k2k", &job), dir.path());
            peak = peak.max(rss);
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
            "{:<34} {:>12.0} {:>14.0} {:>8.2} {:>12.2} {:>12.0}",
            label,
            events as f64 / wall,
            median(cores),
            wall,
            median(brokers),
            peak
        );
    }
    for (label, guarantee) in [
        ("exactly-once, checkpoints 1 s", "exactly_once"),
        ("at-least-once, checkpoints 1 s", "at_least_once"),
    ] {
        let (mut seen, mut p50, mut p99, mut max) = (vec![], vec![], vec![], vec![]);
        for r in 0..runs {
            let lat = latency(
                broker,
                &format!("{tag}-{guarantee}-{r}"),
                guarantee,
                dir.path(),
            );
            seen.push(lat.len() as f64);
            p50.push(percentile(&lat, 0.5));
            p99.push(percentile(&lat, 0.99));
            max.push(percentile(&lat, 1.0));
        }
        println!(
            "latency {label:<32} {:.0} of {LATENCY_EVENTS} records seen: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            median(seen),
            median(p50),
            median(p99),
            median(max)
        );
    }
}

const LATENCY_EVENTS: u64 = 400_000;
const LATENCY_RATE: u64 = 20_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// End-to-end latency of a running Kafka → Kafka job, sorted, in ms: this harness produces
/// `LATENCY_EVENTS` JSON events at `LATENCY_RATE` per second into topic `lat-in-…`, each
/// carrying its send time in `value`; the job (an unbounded `kafka_source` into a
/// `kafka_sink` with the given guarantee) copies them to `lat-out-…`; a read-committed
/// consumer here sees them there. Latency = seen − sent: everything a record waits for,
/// including the rows the exactly-once sink holds while the previous checkpoint's
/// transaction awaits its commit.
///
/// Both consumers (the job's source and this harness's) fetch with `fetch.wait.max.ms` 10:
/// tansu holds every fetch for that long even when data is waiting (Kafka answers as soon as
/// `fetch.min.bytes`, 1, is there), which at librdkafka's default of 500 ms would add up to
/// half a second per hop to both guarantees alike.
fn latency(broker: &str, tag: &str, guarantee: &str, dir: &Path) -> Vec<f64> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let (input, output) = (format!("lat-in-{tag}"), format!("lat-out-{tag}"));
    create_topic(broker, &input, 1);
    create_topic(broker, &output, 1);
    let job = format!(
        r#"{{"name": "lat", "guarantee": "{guarantee}", "checkpoint": {{"interval_ms": 1000}},
"operators": [
 {{"id": "in", "type": "kafka_source", "bootstrap_servers": "{broker}", "topic": "{input}", "format": "json",
   "schema": [["id", "int64"], ["key", "int64"], ["value", "int64"]], "properties": {{"fetch.wait.max.ms": "10"}}}},
 {{"id": "out", "inputs": [{{"from": "in"}}], {}}}]}}"#,
        sink(broker, &output, guarantee)
    );
    let path = write_job(dir, "lat", &job);
    let mut child = spawn(
        &[
            "run",
            &path,
            "--progress",
            "0",
            "--state-dir",
            dir.join("state").to_str().expect("utf8"),
        ],
        true,
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", format!("bench-{tag}"))
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&output, 0, rdkafka::Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    // Let the job start (it reads from the beginning, so nothing is missed either way).
    std::thread::sleep(Duration::from_secs(3));
    let broker_addr = broker.to_string();
    let producer = std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &broker_addr)
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .create()
            .expect("producer");
        let start = Instant::now();
        let mut payload = String::new();
        for i in 0..LATENCY_EVENTS {
            let due = start + Duration::from_micros(i * 1_000_000 / LATENCY_RATE);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            payload.clear();
            use std::fmt::Write as _;
            let _ = write!(
                payload,
                r#"{{"id":{i},"key":{},"value":{}}}"#,
                i % 1000,
                now_ms()
            );
            let mut record = BaseRecord::<(), str>::to(&input).payload(&payload);
            while let Err((_, back)) = p.send(record) {
                record = back;
                p.poll(Duration::from_millis(1));
            }
            p.poll(Duration::ZERO);
        }
        let _ = p.flush(Duration::from_secs(30));
    });
    let mut lat_ms: Vec<f64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (lat_ms.len() as u64) < LATENCY_EVENTS && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let seen = now_ms();
            let sent = m
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                .and_then(|v| v["value"].as_i64());
            if let Some(sent) = sent {
                lat_ms.push((seen - sent) as f64);
            }
        }
    }
    let _ = producer.join();
    let _ = child.kill();
    let _ = child.wait();
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    lat_ms
}
