//! Sources and sinks, one file (or folder) each: the generator and Nexmark sources, files
//! (CSV, JSON lines, lines and Parquet, on a local folder or S3), Kafka, PostgreSQL, and the
//! stdout and blackhole sinks. [`register`] enters the ones this build has in a task manager's
//! registry; each external system's client library is behind its cargo feature (`kafka`,
//! `postgres`, `parquet`), which also tells the planner the connector exists.
//!
//! Two-phase-commit sinks (files, PostgreSQL, Kafka) pre-commit in `Operator::snapshot` and
//! commit in `Operator::checkpoint_complete`; their recovery follows `docs/checkpoints.md`.
//!
//! Architecture invariant: no knowledge of task or job managers; schemas and settings checks
//! live in `weir-planner`, so the job manager refuses a bad connector spec without this crate.
//! A new connector goes here: its file, its `register` line, and its schema in the planner.

mod file_sink;
mod file_source;
mod generator;
mod json_lines;
#[cfg(feature = "kafka")]
mod kafka_client;
#[cfg(feature = "kafka")]
pub mod kafka_sink;
#[cfg(feature = "kafka")]
pub mod kafka_source;
pub mod nexmark;
#[cfg(feature = "postgres")]
mod postgres_sink;
mod sinks;

pub use file_sink::{committed_files, FileSink};
pub use generator::Generator;

use weir_runtime::error::RuntimeError;
use weir_runtime::operator::{Operator, Source};
use weir_runtime::registry::Registry;
use weir_types::{OperatorKind, OperatorSpec};

/// A builder was handed a spec of another kind (a registration mistake).
fn wrong_kind(spec: &OperatorSpec) -> RuntimeError {
    RuntimeError::Internal(format!(
        "operator {:?}: registered builder does not build {}",
        spec.id,
        spec.kind.type_name()
    ))
}

/// Enters every source and sink of this build in `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .source("generator", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::Generator(g) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                Ok(Box::new(Generator::new(ctx, g, restored)?) as Box<dyn Source>)
            })
        })
        .source("nexmark", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::Nexmark(n) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let s = nexmark::NexmarkSource::new(ctx, n, restored)?;
                Ok(Box::new(s) as Box<dyn Source>)
            })
        })
        .source("file_source", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::FileSource(f) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let s = file_source::FileSource::open(ctx, f, restored).await?;
                Ok(Box::new(s) as Box<dyn Source>)
            })
        })
        .operator("blackhole_sink", |_, _, _| {
            Box::pin(async { Ok(Box::new(sinks::Blackhole::default()) as Box<dyn Operator>) })
        })
        .operator("stdout_sink", |ctx, spec, _| {
            Box::pin(async move {
                let OperatorKind::StdoutSink(s) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                Ok(Box::new(sinks::Stdout::new(ctx, s)) as Box<dyn Operator>)
            })
        })
        .operator("file_sink", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::FileSink(f) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                Ok(Box::new(FileSink::open(ctx, f, restored).await?) as Box<dyn Operator>)
            })
        });
    #[cfg(feature = "kafka")]
    registry
        .source("kafka_source", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::KafkaSource(k) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let s = kafka_source::KafkaSource::open(ctx, k, restored).await?;
                Ok(Box::new(s) as Box<dyn Source>)
            })
        })
        .operator("kafka_sink", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::KafkaSink(k) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let s = kafka_sink::KafkaSink::open(ctx, k, restored).await?;
                Ok(Box::new(s) as Box<dyn Operator>)
            })
        });
    #[cfg(feature = "postgres")]
    registry.operator("postgres_sink", |ctx, spec, restored| {
        Box::pin(async move {
            let OperatorKind::PostgresSink(p) = &spec.kind else {
                return Err(wrong_kind(spec));
            };
            let s = postgres_sink::PostgresSink::open(ctx, p, restored).await?;
            Ok(Box::new(s) as Box<dyn Operator>)
        })
    });
}
