//! Filter: keeps the rows for which a SQL predicate is true.

use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_planner::expr::{compile, CompiledExpr};
use weir_runtime::error::Result;
use weir_runtime::operator::Operator;

pub struct Filter {
    predicate: CompiledExpr,
}

impl Filter {
    pub fn new(sql: &str, input: &SchemaRef) -> Result<Self> {
        Ok(Self {
            predicate: compile(sql, input)?,
        })
    }
}

#[async_trait]
impl Operator for Filter {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let mask = self.predicate.evaluate_predicate(&batch)?;
        let out = filter_record_batch(&batch, &mask)?;
        Ok((out.num_rows() > 0).then_some(out))
    }
}
