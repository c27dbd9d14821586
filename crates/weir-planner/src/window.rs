//! The window aggregate's output schema: keys, `window_start`, `window_end`, aggregates.

use crate::error::{PlanError, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use weir_types::WindowSpec;

/// The operator's output schema: keys, `window_start`, `window_end`, aggregates.
pub fn schema(spec: &WindowSpec, input: &Schema, op: &str) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    for k in &spec.keys {
        let f = input.field_with_name(k).map_err(|_| {
            PlanError::Invalid(format!("operator {op:?}: unknown key column {k:?}"))
        })?;
        if !crate::keys::is_key_type(f.data_type()) {
            return Err(PlanError::Invalid(format!(
                "operator {op:?}: cannot key by {k:?} of type {}",
                f.data_type()
            )));
        }
        fields.push(f.clone());
    }
    let t = input.field_with_name(&spec.time).map_err(|_| {
        PlanError::Invalid(format!(
            "operator {op:?}: unknown time column {:?}",
            spec.time
        ))
    })?;
    if !matches!(t.data_type(), DataType::Timestamp(_, _) | DataType::Int64) {
        return Err(PlanError::Invalid(format!(
            "operator {op:?}: the time column {:?} is {}, not a timestamp",
            spec.time,
            t.data_type()
        )));
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    fields.push(Field::new("window_start", ts.clone(), false));
    fields.push(Field::new("window_end", ts, false));
    for a in &spec.aggregates {
        let t = crate::types::agg_type(input, op, a.func, a.column.as_deref())?;
        if fields.iter().any(|f| f.name() == &a.name) {
            return Err(PlanError::Invalid(format!(
                "operator {op:?}: output column {:?} already exists",
                a.name
            )));
        }
        // SUM, MIN and MAX over no values are NULL.
        fields.push(Field::new(&a.name, t, a.func != weir_types::AggFn::Count));
    }
    Ok(Arc::new(Schema::new(fields)))
}
