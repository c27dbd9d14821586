//! The join's output schema, and its key and filter checks.

use crate::error::{PlanError, Result};
use crate::expr::compile;
use crate::keys::is_key_type;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_types::JoinSpec;

/// The output schema: the left side's columns, then the right's, named by `spec.columns`
/// (or their own names).
pub fn schema(spec: &JoinSpec, left: &Schema, right: &Schema, op: &str) -> Result<SchemaRef> {
    let err = |m: String| PlanError::Invalid(format!("operator {op:?}: {m}"));
    for (l, r) in spec.left_keys.iter().zip(&spec.right_keys) {
        let lf = left
            .field_with_name(l)
            .map_err(|_| err(format!("unknown left key column {l:?}")))?;
        let rf = right
            .field_with_name(r)
            .map_err(|_| err(format!("unknown right key column {r:?}")))?;
        if !is_key_type(lf.data_type()) {
            return Err(err(format!(
                "cannot join on {l:?} of type {}",
                lf.data_type()
            )));
        }
        if lf.data_type() != rf.data_type() {
            return Err(err(format!(
                "join keys {l:?} ({}) and {r:?} ({}) have different types",
                lf.data_type(),
                rf.data_type()
            )));
        }
    }
    let fields: Vec<&Field> = left
        .fields()
        .iter()
        .chain(right.fields().iter())
        .map(|f| f.as_ref())
        .collect();
    let names: Vec<String> = if spec.columns.is_empty() {
        fields.iter().map(|f| f.name().clone()).collect()
    } else if spec.columns.len() == fields.len() {
        spec.columns.clone()
    } else {
        return Err(err(format!(
            "\"columns\" names {} columns; the inputs have {}",
            spec.columns.len(),
            fields.len()
        )));
    };
    let mut out = Vec::with_capacity(fields.len());
    for (f, name) in fields.iter().zip(&names) {
        if out.iter().any(|o: &Field| o.name() == name) {
            return Err(err(format!(
                "output column {name:?} appears twice (name the columns with \"columns\")"
            )));
        }
        out.push(f.as_ref().clone().with_name(name));
    }
    let out: SchemaRef = Arc::new(Schema::new(out));
    if let Some(f) = &spec.filter {
        let e = compile(f, &out).map_err(|e| err(e.to_string()))?;
        if e.data_type != DataType::Boolean {
            return Err(err(format!("join filter {f:?} is not a predicate")));
        }
    }
    Ok(out)
}
