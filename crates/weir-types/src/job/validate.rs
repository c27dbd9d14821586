//! [`JobSpec::validate`]: the structural checks of a job (settings, ids, edges, watermarks,
//! each operator family's and each connector's settings), in a fixed order, the first failure
//! reported.

use super::{
    AggFn, DeliveryGuarantee, JobSpec, KafkaFormat, KafkaSinkGuarantee, KafkaStart, OperatorKind,
    OperatorSpec, OverSpec, Partitioning,
};
use crate::error::{Result, TypesError};
use std::collections::{HashMap, HashSet};

/// The error of an invalid job.
fn bad<T>(m: String) -> Result<T> {
    Err(TypesError::Invalid(m))
}

impl JobSpec {
    /// Structural checks: ids, references, acyclicity, parallelism, partitioning.
    ///
    /// The job's settings first, then every operator's id and parallelism, then each operator
    /// in turn (its inputs, watermark, operator settings, connector settings), then that every
    /// path ends in a sink. The first failure is the error.
    pub fn validate(&self) -> Result<()> {
        self.check_job_settings()?;
        let seen = self.check_ids()?;
        let mut consumed: HashSet<&str> = HashSet::new();
        for op in &self.operators {
            self.check_inputs(op, &seen, &mut consumed)?;
            check_watermark(op)?;
            check_operator_settings(op)?;
            self.check_connector_settings(op)?;
        }
        self.check_consumers(&consumed)
    }

    /// The job-wide settings: name, operators present, max_parallelism, retained checkpoints.
    fn check_job_settings(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return bad("the job needs a non-empty \"name\"".into());
        }
        if self.operators.is_empty() {
            return bad("the job has no operators".into());
        }
        if self.max_parallelism == 0 || self.max_parallelism > 32_768 {
            return bad(format!(
                "max_parallelism must be in 1..=32768, got {}",
                self.max_parallelism
            ));
        }
        if self.checkpoint.retained == 0 {
            return bad("checkpoint.retained must be at least 1".into());
        }
        Ok(())
    }

    /// Every operator's id (present, unique), parallelism and file source settings; the index
    /// of each operator by id.
    fn check_ids(&self) -> Result<HashMap<&str, usize>> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, op) in self.operators.iter().enumerate() {
            if op.id.is_empty() {
                return bad(format!("operator #{i} has an empty id"));
            }
            if seen.insert(&op.id, i).is_some() {
                return bad(format!("operator id {:?} is used twice", op.id));
            }
            if op.parallelism == 0 || op.parallelism > self.max_parallelism {
                return bad(format!(
                    "operator {:?}: parallelism {} is outside 1..={} (max_parallelism)",
                    op.id, op.parallelism, self.max_parallelism
                ));
            }
            check_file_source(op)?;
        }
        Ok(seen)
    }

    /// An operator's inputs: sources have none, other operators some, each from a known
    /// operator that is not a sink, over a forward edge of equal parallelism or a hash edge
    /// naming keys. Each upstream operator is recorded in `consumed`.
    fn check_inputs<'a>(
        &'a self,
        op: &OperatorSpec,
        seen: &HashMap<&str, usize>,
        consumed: &mut HashSet<&'a str>,
    ) -> Result<()> {
        if op.kind.is_source() && !op.inputs.is_empty() {
            return bad(format!("source {:?} cannot have inputs", op.id));
        }
        if !op.kind.is_source() && op.inputs.is_empty() {
            return bad(format!(
                "operator {:?} ({}) needs at least one input",
                op.id,
                op.kind.type_name()
            ));
        }
        for input in &op.inputs {
            let Some(&from) = seen.get(input.from.as_str()) else {
                return bad(format!(
                    "operator {:?} reads from unknown operator {:?}",
                    op.id, input.from
                ));
            };
            let up = &self.operators[from];
            if up.kind.is_sink() {
                return bad(format!(
                    "operator {:?} reads from sink {:?}; sinks have no output",
                    op.id, up.id
                ));
            }
            consumed.insert(&up.id);
            match &input.partition {
                Partitioning::Forward if up.parallelism != op.parallelism => {
                    return bad(format!(
                        "forward edge {:?} -> {:?} needs equal parallelism ({} vs {}); use \"rebalance\" or \"hash\"",
                        up.id, op.id, up.parallelism, op.parallelism
                    ));
                }
                Partitioning::Hash(keys) if keys.is_empty() => {
                    return bad(format!(
                        "hash edge {:?} -> {:?} names no key columns",
                        up.id, op.id
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The connector settings that depend on the job's guarantee and checkpoints
    /// (exactly-once sinks, Kafka sinks, PostgreSQL sinks), then those of each source.
    fn check_connector_settings(&self, op: &OperatorSpec) -> Result<()> {
        if op.kind.is_transactional_sink()
            && self.guarantee == DeliveryGuarantee::ExactlyOnce
            && self.checkpoint.interval_ms == 0
        {
            return bad(format!(
                "{} {:?} is an exactly-once sink: it commits with checkpoints, and this job's checkpoints are off; set checkpoint.interval_ms (e.g. 1000) or choose guarantee \"at_least_once\"",
                op.kind.type_name(),
                op.id
            ));
        }
        check_kafka_source(op)?;
        self.check_kafka_sink(op)?;
        if let OperatorKind::PostgresSink(p) = &op.kind {
            p.validate(&op.id, self.guarantee)?;
        }
        if let OperatorKind::Nexmark(n) = &op.kind {
            n.validate(&op.id).map_err(TypesError::Invalid)?;
        }
        check_generator(op)
    }

    /// A `kafka_sink`'s address, and an exactly-once one's guarantee and transaction timeout.
    fn check_kafka_sink(&self, op: &OperatorSpec) -> Result<()> {
        if let OperatorKind::KafkaSink(k) = &op.kind {
            if k.bootstrap_servers.trim().is_empty() || k.topic.trim().is_empty() {
                return bad(format!(
                    "kafka_sink {:?} needs \"bootstrap_servers\" and \"topic\"",
                    op.id
                ));
            }
            if k.guarantee == KafkaSinkGuarantee::ExactlyOnce {
                if self.guarantee != DeliveryGuarantee::ExactlyOnce {
                    return bad(format!(
                        "kafka_sink {:?}: guarantee \"exactly_once\" needs the job's guarantee \"exactly_once\" (it is {}); use \"at_least_once\"",
                        op.id,
                        self.guarantee.name()
                    ));
                }
                let needed = self.checkpoint.interval_ms + self.checkpoint.timeout_ms;
                if k.transaction_timeout_ms <= needed {
                    return bad(format!(
                        "kafka_sink {:?}: transaction_timeout_ms {} is too short: a transaction stays open for a checkpoint interval ({} ms) plus up to the checkpoint timeout ({} ms), so it must exceed {} ms",
                        op.id,
                        k.transaction_timeout_ms,
                        self.checkpoint.interval_ms,
                        self.checkpoint.timeout_ms,
                        needed
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every operator but a sink has a consumer.
    fn check_consumers(&self, consumed: &HashSet<&str>) -> Result<()> {
        for op in &self.operators {
            if !op.kind.is_sink() && !consumed.contains(op.id.as_str()) {
                return bad(format!(
                    "operator {:?} has no consumer; end every path in a sink",
                    op.id
                ));
            }
        }
        Ok(())
    }
}

/// Only sources generate watermarks, and an alignment group has a name.
fn check_watermark(op: &OperatorSpec) -> Result<()> {
    if op.watermark.is_some() && !op.kind.is_source() {
        return bad(format!(
            "operator {:?}: only sources generate watermarks",
            op.id
        ));
    }
    if let Some(a) = op.watermark.as_ref().and_then(|w| w.alignment.as_ref()) {
        if a.group.trim().is_empty() {
            return bad(format!(
                "operator {:?}: the watermark alignment group must not be empty",
                op.id
            ));
        }
    }
    Ok(())
}

/// The settings of the transforming operators: windows, joins and aggregates.
fn check_operator_settings(op: &OperatorSpec) -> Result<()> {
    check_window(op)?;
    check_join(op)?;
    check_updating_aggregate(op)?;
    check_keyed_aggregates(op)
}

/// A `window_aggregate`'s size and slide, and its inputs hash-partitioned by its keys.
fn check_window(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::WindowAggregate(w) = &op.kind {
        if w.gap_ms == 0 && (w.size_ms == 0 || w.slide() > w.size_ms) {
            return bad(format!(
                "window_aggregate {:?}: size_ms must be positive and slide_ms at most size_ms",
                op.id
            ));
        }
        for input in &op.inputs {
            let ok = match &input.partition {
                Partitioning::Hash(k) => !w.keys.is_empty() && *k == w.keys,
                _ => op.parallelism == 1,
            };
            if !ok {
                return bad(format!(
                    "window_aggregate {:?} must read its input {:?} hash-partitioned by its keys {:?} (or run with parallelism 1)",
                    op.id, input.from, w.keys
                ));
            }
        }
    }
    Ok(())
}

/// A `join`'s two inputs, its keys, and each input hash-partitioned by its side's keys.
fn check_join(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::Join(j) = &op.kind {
        if op.inputs.len() != 2 {
            return bad(format!(
                "join {:?} needs two inputs (left, right), not {}",
                op.id,
                op.inputs.len()
            ));
        }
        if j.left_keys.is_empty() || j.left_keys.len() != j.right_keys.len() {
            return bad(format!(
                "join {:?} needs as many right_keys as left_keys, at least one",
                op.id
            ));
        }
        for (input, keys) in op.inputs.iter().zip([&j.left_keys, &j.right_keys]) {
            let ok = match &input.partition {
                Partitioning::Hash(k) => k == keys,
                _ => op.parallelism == 1,
            };
            if !ok {
                return bad(format!(
                    "join {:?} must read its input {:?} hash-partitioned by its keys {:?} (or run with parallelism 1)",
                    op.id, input.from, keys
                ));
            }
        }
    }
    Ok(())
}

/// An `updating_aggregate`'s keys among its upsert keys, and only retractable aggregates.
fn check_updating_aggregate(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::UpdatingAggregate {
        keys,
        upsert_keys,
        aggregates,
        ..
    } = &op.kind
    {
        if let Some(k) = keys.iter().find(|k| !upsert_keys.contains(k)) {
            return bad(format!(
                "updating_aggregate {:?}: key {k:?} is not one of the input's upsert_keys {upsert_keys:?}",
                op.id
            ));
        }
        if let Some(a) = aggregates
            .iter()
            .find(|a| !matches!(a.func, AggFn::Count | AggFn::Sum))
        {
            return bad(format!(
                "updating_aggregate {:?}: {:?} cannot be retracted (COUNT and SUM can)",
                op.id, a.name
            ));
        }
    }
    Ok(())
}

/// What keyed, updating and over aggregates share: keys, aggregates, inputs hash-partitioned
/// by the keys, and a column for every aggregate but `count`.
fn check_keyed_aggregates(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::KeyedAggregate {
        keys, aggregates, ..
    }
    | OperatorKind::UpdatingAggregate {
        keys, aggregates, ..
    }
    | OperatorKind::OverAggregate(OverSpec {
        keys, aggregates, ..
    }) = &op.kind
    {
        if keys.is_empty() {
            return bad(format!("{} {:?} names no keys", op.kind.type_name(), op.id));
        }
        if aggregates.is_empty() {
            return bad(format!(
                "{} {:?} has no aggregates",
                op.kind.type_name(),
                op.id
            ));
        }
        for input in &op.inputs {
            let ok = match &input.partition {
                Partitioning::Hash(k) => k == keys,
                Partitioning::Forward => op.parallelism == 1,
                _ => op.parallelism == 1,
            };
            if !ok {
                return bad(format!(
                    "{} {:?} must read its input {:?} hash-partitioned by its keys {:?}",
                    op.kind.type_name(),
                    op.id,
                    input.from,
                    keys
                ));
            }
        }
        for a in aggregates {
            if a.func != AggFn::Count && a.column.is_none() {
                return bad(format!(
                    "aggregate {:?} of {:?} needs a \"column\"",
                    a.name, op.id
                ));
            }
        }
    }
    Ok(())
}

/// A `file_source`'s path and monitoring interval.
fn check_file_source(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::FileSource(f) = &op.kind {
        if f.path.trim().is_empty() {
            return bad(format!(
                "operator {:?}: the file source needs a \"path\"",
                op.id
            ));
        }
        if f.monitor_interval_ms == Some(0) {
            return bad(format!(
                "operator {:?}: monitor_interval_ms must be at least 1 (leave it out to read the files once)",
                op.id
            ));
        }
    }
    Ok(())
}

/// A `kafka_source`'s address, schema, start and batch size.
fn check_kafka_source(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::KafkaSource(k) = &op.kind {
        if k.bootstrap_servers.trim().is_empty() || k.topic.trim().is_empty() {
            return bad(format!(
                "kafka_source {:?} needs \"bootstrap_servers\" and \"topic\"",
                op.id
            ));
        }
        if k.format != KafkaFormat::Raw && k.schema.is_empty() {
            return bad(format!(
                "kafka_source {:?}: a json or csv payload needs a \"schema\"",
                op.id
            ));
        }
        if k.start == KafkaStart::Group && k.group_id.is_none() {
            return bad(format!(
                "kafka_source {:?}: start \"group\" needs a \"group_id\"",
                op.id
            ));
        }
        if k.batch_size == 0 {
            return bad(format!(
                "kafka_source {:?}: batch_size must be at least 1",
                op.id
            ));
        }
    }
    Ok(())
}

/// A `generator`'s keys and batch size.
fn check_generator(op: &OperatorSpec) -> Result<()> {
    if let OperatorKind::Generator(g) = &op.kind {
        if g.keys == 0 {
            return bad(format!("generator {:?}: keys must be at least 1", op.id));
        }
        if g.batch_size == 0 {
            return bad(format!(
                "generator {:?}: batch_size must be at least 1",
                op.id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::JOB;
    use super::*;

    #[test]
    fn rejects_bad_jobs_with_clear_messages() {
        let cases = [
            (
                JOB.replace("\"gen\", \"partition\"", "\"nope\", \"partition\""),
                "unknown operator \"nope\"",
            ),
            (
                JOB.replace("keyed_aggregate", "frobnicate"),
                "unknown variant `frobnicate`",
            ),
            (
                JOB.replace(
                    "\"parallelism\": 2, \"inputs\": [{\"from\": \"agg\"}]",
                    "\"parallelism\": 3, \"inputs\": [{\"from\": \"agg\"}]",
                ),
                "forward edge",
            ),
            (
                JOB.replace("{\"hash\": [\"key\"]}", "\"rebalance\""),
                "hash-partitioned by its keys",
            ),
            ("{not json".to_string(), "malformed job JSON"),
            (
                JOB.replace("\"interval_ms\": 1000", "\"interval_ms\": 0"),
                "file_sink \"out\" is an exactly-once sink",
            ),
            (
                JOB.replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"postgres_sink\", \"url\": \"postgresql://h/d\", \"table\": \"t\", \"mode\": \"upsert\",",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"batch_rows\": 10"),
                "mode \"upsert\" needs \"key\"",
            ),
            (
                JOB.replace("\"exactly_once\"", "\"at_least_once\"").replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"postgres_sink\", \"url\": \"postgresql://h/d\", \"table\": \"t\",",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"batch_rows\": 10"),
                "needs the job's guarantee \"exactly_once\" (it is at_least_once)",
            ),
            (
                JOB.replace(
                    "\"type\": \"file_sink\",",
                    "\"type\": \"kafka_sink\", \"bootstrap_servers\": \"h:1\", \"topic\": \"t\", \"guarantee\": \"exactly_once\", \"transaction_timeout_ms\": 5000,",
                )
                .replace("\"path\": \"file:///tmp/out\"", "\"format\": \"json\""),
                "transaction_timeout_ms 5000 is too short",
            ),
            (
                JOB.replace("\"interval_ms\": 1000", "\"interval_ms\": 0")
                    .replace(
                        "\"type\": \"file_sink\",",
                        "\"type\": \"kafka_sink\", \"bootstrap_servers\": \"h:1\", \"topic\": \"t\", \"guarantee\": \"exactly_once\",",
                    )
                    .replace("\"path\": \"file:///tmp/out\"", "\"format\": \"json\""),
                "kafka_sink \"out\" is an exactly-once sink",
            ),
        ];
        for (text, want) in cases {
            let err = JobSpec::from_json(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
