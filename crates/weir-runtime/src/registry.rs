//! Which code builds each operator kind: a map from a kind's type name (`"filter"`,
//! `"kafka_sink"`, as in a job's JSON) to its builder. `weir-operators` and `weir-connectors`
//! each register theirs (`register(&mut Registry)`); the binary that runs tasks assembles one
//! registry and hands it to its task managers, so the task loop knows no operator and a new
//! operator or connector is registered in its own crate, behind its own feature.

use crate::error::{Result, RuntimeError};
use crate::operator::{Operator, OperatorContext, Restored, Source};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use weir_types::OperatorSpec;

/// A builder's future: it may connect to an external system (a broker, a database) or read
/// storage before the operator is ready.
pub type Building<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Builds a source from its spec and the state it restores.
pub type SourceBuilder = for<'a> fn(
    &'a OperatorContext,
    &'a OperatorSpec,
    Option<Restored>,
) -> Building<'a, Box<dyn Source>>;

/// Builds an operator (a transform or a sink) from its spec and the state it restores.
pub type OperatorBuilder = for<'a> fn(
    &'a OperatorContext,
    &'a OperatorSpec,
    Option<Restored>,
) -> Building<'a, Box<dyn Operator>>;

/// The builders of one binary, by operator type name.
#[derive(Default, Clone)]
pub struct Registry {
    sources: HashMap<&'static str, SourceBuilder>,
    operators: HashMap<&'static str, OperatorBuilder>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sources: Vec<_> = self.sources.keys().collect();
        let mut operators: Vec<_> = self.operators.keys().collect();
        sources.sort();
        operators.sort();
        f.debug_struct("Registry")
            .field("sources", &sources)
            .field("operators", &operators)
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the source of type `name` (replacing an earlier registration).
    pub fn source(&mut self, name: &'static str, build: SourceBuilder) -> &mut Self {
        self.sources.insert(name, build);
        self
    }

    /// Registers the operator or sink of type `name` (replacing an earlier registration).
    pub fn operator(&mut self, name: &'static str, build: OperatorBuilder) -> &mut Self {
        self.operators.insert(name, build);
        self
    }

    /// Whether this registry builds operators of type `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.sources.contains_key(name) || self.operators.contains_key(name)
    }

    pub async fn build_source(
        &self,
        ctx: &OperatorContext,
        spec: &OperatorSpec,
        restored: Option<Restored>,
    ) -> Result<Box<dyn Source>> {
        let name = spec.kind.type_name();
        match self.sources.get(name) {
            Some(build) => build(ctx, spec, restored).await,
            None if self.operators.contains_key(name) => {
                Err(RuntimeError::Internal(format!("{name} is not a source")))
            }
            None => Err(missing(name)),
        }
    }

    pub async fn build_operator(
        &self,
        ctx: &OperatorContext,
        spec: &OperatorSpec,
        restored: Option<Restored>,
    ) -> Result<Box<dyn Operator>> {
        let name = spec.kind.type_name();
        match self.operators.get(name) {
            Some(build) => build(ctx, spec, restored).await,
            None if self.sources.contains_key(name) => Err(RuntimeError::Internal(
                "a source cannot follow another operator".into(),
            )),
            None => Err(missing(name)),
        }
    }
}

/// No builder for `name`: the connector's feature is off in this build (the planner names
/// it), or the binary did not register the crate that builds it.
fn missing(name: &str) -> RuntimeError {
    match weir_planner::schema::feature_of(name) {
        Some(feature) => weir_planner::not_built(name, feature).into(),
        None => RuntimeError::Internal(format!("no builder is registered for {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::SourcePoll;
    use arrow::datatypes::Schema;
    use async_trait::async_trait;
    use std::sync::Arc;
    use weir_types::{CheckpointId, JobSpec};

    struct Empty;

    #[async_trait]
    impl Source for Empty {
        async fn poll_next(&mut self) -> Result<SourcePoll> {
            Ok(SourcePoll::Exhausted)
        }
        fn snapshot(&mut self, _: CheckpointId) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    /// Operator `id` of a job made of `ops`.
    fn spec(ops: &str, id: &str) -> OperatorSpec {
        let job = JobSpec::from_json(&format!(r#"{{"name":"t","operators":[{ops}]}}"#)).unwrap();
        job.operators.into_iter().find(|o| o.id == id).unwrap()
    }

    #[tokio::test]
    async fn builds_what_is_registered_and_names_what_is_not() {
        let mut r = Registry::new();
        r.source("generator", |_, _, _| {
            Box::pin(async { Ok(Box::new(Empty) as Box<dyn Source>) })
        });
        let schema = Arc::new(Schema::empty());
        let ctx = OperatorContext::for_test("g", 0, 1, vec![], schema);
        let gen = spec(
            r#"{"id":"g","type":"generator"},{"id":"o","type":"blackhole_sink","inputs":[{"from":"g"}]}"#,
            "g",
        );
        assert!(r.build_source(&ctx, &gen, None).await.is_ok());
        let err = r.build_operator(&ctx, &gen, None).await.err().unwrap();
        assert!(err.to_string().contains("cannot follow"), "{err}");
        let kafka = spec(
            r#"{"id":"k","type":"kafka_source","bootstrap_servers":"127.0.0.1:1","topic":"t","format":"json","schema":[["id","int64"]]},
               {"id":"o","type":"blackhole_sink","inputs":[{"from":"k"}]}"#,
            "k",
        );
        let err = r.build_source(&ctx, &kafka, None).await.err().unwrap();
        assert!(err.to_string().contains("cargo feature `kafka`"), "{err}");
        let union = spec(
            r#"{"id":"g","type":"generator"},{"id":"u","type":"union","inputs":[{"from":"g"}]},
               {"id":"o","type":"blackhole_sink","inputs":[{"from":"u"}]}"#,
            "u",
        );
        let err = r.build_operator(&ctx, &union, None).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("no builder is registered for union"),
            "{err}"
        );
    }
}
