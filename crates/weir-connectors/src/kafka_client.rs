//! What the Kafka source and sink share about librdkafka clients: the context that keeps a
//! client's error reports, the metadata probe that turns a failed start into the client's
//! reason, and errors that say what to do when this build cannot honour a setting.

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};
use weir_runtime::error::RuntimeError;

/// A connector error from a librdkafka error, with the build hint if one applies.
pub(crate) fn kafka_err(what: &str, e: KafkaError) -> RuntimeError {
    let e = e.to_string();
    RuntimeError::Connector(format!("kafka: {what}: {e}{}", build_hint(&e)))
}

/// What to do about a setting this build's librdkafka cannot honour: TLS and SCRAM need
/// OpenSSL, which only the `kafka-tls` feature builds in.
pub(crate) fn build_hint(error: &str) -> &'static str {
    if error.contains("OpenSSL not available at build time") {
        " (this weir was built without TLS and SCRAM: build it with the `kafka-tls` feature)"
    } else {
        ""
    }
}

/// A client context that keeps the client's last error report. librdkafka reports why it
/// cannot reach a broker (a refused connection, a failed SASL authentication) through this
/// callback, while the call that then times out only says "transport failure"; a failed start
/// names both.
#[derive(Default, Clone)]
pub(crate) struct ClientErrors {
    last: Arc<std::sync::Mutex<Option<String>>>,
}

impl ClientErrors {
    /// "; the client reported: …" if it did, else nothing.
    pub(crate) fn explain(&self) -> String {
        self.last
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .map(|e| format!("; the client reported: {e}"))
            .unwrap_or_default()
    }
}

impl ClientErrors {
    /// Keeps the first report: the specific cause ("SASL … handshake failed"), not the
    /// "1/1 brokers are down" that follows it.
    fn record(&self, what: &str) {
        if let Ok(mut l) = self.last.lock() {
            l.get_or_insert_with(|| what.to_string());
        }
    }
}

impl rdkafka::ClientContext for ClientErrors {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}");
                self.record(message);
            }
            L::Warning => warn!(target: "librdkafka", facility = fac, "{message}"),
            L::Notice | L::Info => info!(target: "librdkafka", facility = fac, "{message}"),
            L::Debug => debug!(target: "librdkafka", facility = fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A bounded source asks for partition-EOF events; they arrive here too and say
        // nothing wrong.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            debug!(reason, "partition end");
            return;
        }
        warn!(error = %error, reason, "kafka client error");
        self.record(reason);
    }
}

impl rdkafka::consumer::ConsumerContext for ClientErrors {}

/// Reads `topic`'s metadata with a short-lived consumer of `config`. librdkafka delivers its
/// reports (a failed SASL handshake, a refused connection) as events that only a poll serves,
/// after the metadata call has already failed, so on failure the probe polls them and the
/// error ends with what the client reported.
pub(crate) fn probe_metadata(
    config: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> std::result::Result<rdkafka::metadata::Metadata, String> {
    let errors = ClientErrors::default();
    let probe: rdkafka::consumer::BaseConsumer<ClientErrors> =
        config.create_with_context(errors.clone()).map_err(|e| {
            let e = e.to_string();
            format!("{e}{}", build_hint(&e))
        })?;
    probe.fetch_metadata(Some(topic), timeout).map_err(|e| {
        for _ in 0..5 {
            let _ = probe.poll(Duration::from_millis(20));
        }
        let e = e.to_string();
        format!("{e}{}{}", build_hint(&e), errors.explain())
    })
}
