//! What several Kafka test files share: the events they produce into topic `events` and the
//! streaming count job that reads them.

use super::expected_key;
use super::kafka::Broker;
use rdkafka::producer::FutureRecord;
use std::time::Duration;

/// The seed of the events' keys: [`produce_events`] makes them as the generator would with
/// it, and the checks of the output ([`super::check_output`]) take it.
pub const SEED: u64 = 42;

/// A streaming job: kafka topic `events` (JSON `{"id", "key"}`) → hash(key) → running count →
/// (id, key, n) → exactly-once CSV file sink, checkpoints every second.
pub fn kafka_count_job(broker: &str, out: &std::path::Path) -> String {
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
pub async fn produce_events(broker: &Broker, count: u64, keys: u64, secs: u64) {
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
