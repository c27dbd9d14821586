//! Reaching a Kafka broker (tansu, started per test; see `tests/common/kafka.rs` and
//! `docs/kafka.md`), and failing clearly when it cannot: an unreachable broker, a missing
//! topic, credentials the broker refuses, and TLS (with the `kafka-tls` feature) with a
//! trusted and an untrusted certificate.

mod common;

use common::kafka::Broker;
use common::kafka_jobs::kafka_count_job;
use common::*;
use rdkafka::producer::Producer;
use std::time::Duration;

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
