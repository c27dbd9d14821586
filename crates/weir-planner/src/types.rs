//! Column types: the type names a source's schema takes, an aggregate's output type, and
//! looking a column up with an error that lists the ones there are.

use crate::error::{PlanError, Result};
use arrow::datatypes::{DataType, Field, Schema};
use weir_types::AggFn;

/// Parses a type name of a file source's schema.
pub fn parse_type(name: &str) -> Result<DataType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "int64" | "bigint" | "long" => DataType::Int64,
        "int32" | "int" | "integer" => DataType::Int32,
        "float64" | "double" => DataType::Float64,
        "utf8" | "string" | "varchar" | "text" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "timestamp" | "timestamp_ms" => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None)
        }
        other => {
            return Err(PlanError::Invalid(format!(
                "unknown column type {other:?} (use int64, int32, float64, utf8, bool or timestamp)"
            )))
        }
    })
}

pub(crate) fn plan_err<T>(op: &str, msg: String) -> Result<T> {
    Err(PlanError::Invalid(format!("operator {op:?}: {msg}")))
}

pub(crate) fn column<'a>(schema: &'a Schema, op: &str, name: &str) -> Result<&'a Field> {
    schema.field_with_name(name).or_else(|_| {
        let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        plan_err(
            op,
            format!("unknown column {name:?} (columns: {})", have.join(", ")),
        )
    })
}

/// The output type of an aggregate: count is int64; sum is int64 or float64; min and max keep
/// the column's numeric type.
pub fn agg_type(input: &Schema, op: &str, func: AggFn, col: Option<&str>) -> Result<DataType> {
    if func == AggFn::Count {
        return Ok(DataType::Int64);
    }
    let name =
        col.ok_or_else(|| PlanError::Invalid(format!("operator {op:?}: {func:?} needs a column")))?;
    let t = column(input, op, name)?.data_type().clone();
    match t {
        t if t.is_integer() => Ok(DataType::Int64),
        DataType::Float32 | DataType::Float64 => Ok(DataType::Float64),
        other => plan_err(op, format!("cannot aggregate {name:?} of type {other}")),
    }
}
