//! Projection: new columns computed by SQL expressions.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_planner::expr::{compile, CompiledExpr};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::Operator;
use weir_types::ProjectExpr;

pub struct Project {
    exprs: Vec<CompiledExpr>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: &[ProjectExpr], input: &SchemaRef, schema: SchemaRef) -> Result<Self> {
        let exprs = exprs
            .iter()
            .map(|p| compile(&p.expr, input).map_err(RuntimeError::from))
            .collect::<Result<_>>()?;
        Ok(Self { exprs, schema })
    }
}

#[async_trait]
impl Operator for Project {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let cols = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch).map_err(RuntimeError::from))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(RecordBatch::try_new(self.schema.clone(), cols)?))
    }
}
