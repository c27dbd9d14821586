//! The Nexmark tables' Arrow schemas, and the columns a source spec projects.

use crate::error::{PlanError, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use weir_types::{NexmarkSpec, NexmarkTable};

pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// All columns of a table, in their declared order (the list is `NexmarkTable::columns`).
pub fn table_schema(table: NexmarkTable) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns()
            .iter()
            .map(|(name, ty)| {
                let t = match *ty {
                    "int64" => DataType::Int64,
                    "timestamp" => ts_type(),
                    _ => DataType::Utf8,
                };
                Field::new(*name, t, false)
            })
            .collect::<Vec<_>>(),
    ))
}

/// The source's schema: the table's columns the spec asks for, in its order.
pub fn schema(spec: &NexmarkSpec) -> Result<SchemaRef> {
    let full = table_schema(spec.table);
    Ok(Arc::new(full.project(&column_indices(spec, &full)?)?))
}

pub fn column_indices(spec: &NexmarkSpec, full: &Schema) -> Result<Vec<usize>> {
    if spec.columns.is_empty() {
        return Ok((0..full.fields().len()).collect());
    }
    spec.columns
        .iter()
        .map(|c| {
            full.index_of(c).map_err(|_| {
                let have: Vec<&str> = full.fields().iter().map(|f| f.name().as_str()).collect();
                PlanError::Invalid(format!(
                    "the nexmark {} table has no column {c:?} (columns: {})",
                    spec.table.name(),
                    have.join(", ")
                ))
            })
        })
        .collect()
}
