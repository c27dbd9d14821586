//! SQL expressions on Arrow batches, compiled once per operator by DataFusion.

use crate::error::{Result, RuntimeError};
use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// A compiled expression and the type it produces.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    pub sql: String,
    pub expr: Arc<dyn PhysicalExpr>,
    pub data_type: DataType,
    pub nullable: bool,
}

/// Compiles SQL expression text against an input schema.
pub fn compile(sql: &str, schema: &SchemaRef) -> Result<CompiledExpr> {
    let ctx = SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())
        .map_err(|e| RuntimeError::Plan(e.to_string()))?;
    let logical = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| RuntimeError::Plan(format!("expression {sql:?}: {}", short(&e))))?;
    let expr = ctx
        .create_physical_expr(logical, &df_schema)
        .map_err(|e| RuntimeError::Plan(format!("expression {sql:?}: {}", short(&e))))?;
    let data_type = expr
        .data_type(schema)
        .map_err(|e| RuntimeError::Plan(format!("expression {sql:?}: {}", short(&e))))?;
    let nullable = expr.nullable(schema).unwrap_or(true);
    Ok(CompiledExpr {
        sql: sql.to_string(),
        expr,
        data_type,
        nullable,
    })
}

fn short(e: &datafusion::error::DataFusionError) -> String {
    // DataFusion prefixes errors with their kind and adds backtraces in some builds.
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl CompiledExpr {
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        Ok(self.expr.evaluate(batch)?.into_array(batch.num_rows())?)
    }

    /// Evaluates a predicate; NULL counts as false.
    pub fn evaluate_predicate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let arr = self.evaluate(batch)?;
        arr.as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| {
                RuntimeError::Internal(format!("predicate {:?} is not boolean", self.sql))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn compiles_and_evaluates() {
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 5, 10]))],
        )
        .unwrap();
        let p = compile("x % 5 = 0 AND x > 1", &schema).unwrap();
        assert_eq!(p.data_type, DataType::Boolean);
        let mask = p.evaluate_predicate(&batch).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true, true]));
        let e = compile("x * 2 + 1", &schema).unwrap();
        let out = e.evaluate(&batch).unwrap();
        assert_eq!(
            out.as_any().downcast_ref::<Int64Array>().unwrap().values(),
            &[3, 11, 21]
        );
        let err = compile("nope > 1", &schema).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
