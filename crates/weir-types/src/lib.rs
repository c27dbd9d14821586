//! Weir's core vocabulary, shared by every other crate: ids, the job specification and its JSON
//! form, the execution plan derived from it (tasks, edges, channels), and key groups.
//!
//! Also [`sync::lock`], the poison-tolerant mutex lock the other crates share.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of Arrow, gRPC or storage.

pub mod error;
pub mod failpoint;
pub mod ids;
pub mod job;
pub mod keygroup;
pub mod nexmark;
pub mod patterns;
pub mod plan;
pub mod state;
pub mod sync;

pub use error::{Result, TypesError};
pub use ids::{CheckpointId, JobId, TaskKey};
pub use job::{
    AggFn, AggSpec, BadRecords, CheckpointConfig, DeliveryGuarantee, ExpireBound, FileFormat,
    FileSinkSpec, FileSourceSpec, GeneratorSpec, InputSpec, JobSpec, JoinSpec, KafkaFormat,
    KafkaPartitioner, KafkaSinkGuarantee, KafkaSinkSpec, KafkaSourceSpec, KafkaStart, OnConflict,
    OperatorKind, OperatorSpec, OverSpec, Partitioning, PostgresSinkMode, PostgresSinkSpec,
    ProjectExpr, RestartStrategy, StateBackend, StdoutSinkSpec, WatermarkAlignment, WatermarkSpec,
    WindowSpec,
};
pub use nexmark::{NexmarkSpec, NexmarkTable};
pub use plan::{Channel, EdgeInfo, ExecutionPlan, TaskVertex};
pub use state::{CheckpointState, JobState};

/// The gRPC endpoints of a `--jobmanager` value: one address or a comma list (a leader and
/// its standbys), trimmed, empty entries dropped, `http://` added where no scheme is given.
pub fn endpoint_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.contains("://") {
                a.to_string()
            } else {
                format!("http://{a}")
            }
        })
        .collect()
}

/// Milliseconds since the Unix epoch, for timestamps in records and status.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_job_manager_list_becomes_endpoints() {
        assert_eq!(
            super::endpoint_list(" jm-0:6123, ,https://jm-1:6123,"),
            vec!["http://jm-0:6123", "https://jm-1:6123"]
        );
        assert!(super::endpoint_list(" , ").is_empty());
    }
}
