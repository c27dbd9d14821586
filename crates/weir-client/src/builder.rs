//! A builder for job graphs, producing the same [`JobSpec`] as the JSON form.
//!
//! ```
//! use weir_client::JobBuilder;
//! use weir_types::{AggFn, AggSpec, DeliveryGuarantee, GeneratorSpec, OperatorKind, Partitioning};
//!
//! let mut job = JobBuilder::new("counts");
//! job.guarantee(DeliveryGuarantee::ExactlyOnce).checkpoint_interval_ms(1000);
//! job.operator("events", OperatorKind::Generator(GeneratorSpec { count: Some(1000), keys: 10, ..Default::default() }))
//!     .parallelism(2);
//! job.operator("counts", OperatorKind::KeyedAggregate {
//!         keys: vec!["key".into()],
//!         aggregates: vec![AggSpec { func: AggFn::Count, column: None, name: "n".into() }],
//!         skip_unchanged: false,
//!     })
//!     .parallelism(2)
//!     .input("events", Partitioning::Hash(vec!["key".into()]));
//! job.operator("out", OperatorKind::BlackholeSink).parallelism(2).input("counts", Partitioning::Forward);
//! let spec = job.build().unwrap();
//! assert_eq!(spec.slots_needed(), 4);
//! ```

use weir_types::{
    CheckpointConfig, DeliveryGuarantee, InputSpec, JobSpec, OperatorKind, OperatorSpec,
    Partitioning, RestartStrategy, TypesError,
};

pub struct JobBuilder {
    spec: JobSpec,
}

pub struct OperatorBuilder<'a> {
    op: &'a mut OperatorSpec,
}

impl OperatorBuilder<'_> {
    pub fn parallelism(&mut self, p: u32) -> &mut Self {
        self.op.parallelism = p;
        self
    }
    pub fn input(&mut self, from: &str, partition: Partitioning) -> &mut Self {
        self.op.inputs.push(InputSpec {
            from: from.to_string(),
            partition,
        });
        self
    }
}

impl JobBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            spec: JobSpec {
                name: name.to_string(),
                guarantee: DeliveryGuarantee::default(),
                checkpoint: CheckpointConfig::default(),
                max_parallelism: weir_types::job::DEFAULT_MAX_PARALLELISM,
                restart: RestartStrategy::default(),
                state_backend: Default::default(),
                operators: vec![],
            },
        }
    }
    pub fn guarantee(&mut self, g: DeliveryGuarantee) -> &mut Self {
        self.spec.guarantee = g;
        self
    }
    pub fn checkpoint_interval_ms(&mut self, ms: u64) -> &mut Self {
        self.spec.checkpoint.interval_ms = ms;
        self
    }
    pub fn checkpoint_storage(&mut self, url: &str) -> &mut Self {
        self.spec.checkpoint.storage = url.to_string();
        self
    }
    pub fn max_parallelism(&mut self, n: u32) -> &mut Self {
        self.spec.max_parallelism = n;
        self
    }
    pub fn restart(&mut self, r: RestartStrategy) -> &mut Self {
        self.spec.restart = r;
        self
    }
    /// Adds an operator (parallelism 1, no inputs until given).
    pub fn operator(&mut self, id: &str, kind: OperatorKind) -> OperatorBuilder<'_> {
        self.spec.operators.push(OperatorSpec {
            id: id.to_string(),
            parallelism: 1,
            inputs: vec![],
            kind,
            watermark: None,
        });
        let op = self.spec.operators.last_mut().expect("just pushed");
        OperatorBuilder { op }
    }
    /// Checks the graph and returns the spec.
    pub fn build(&self) -> Result<JobSpec, TypesError> {
        self.spec.validate()?;
        Ok(self.spec.clone())
    }
}
