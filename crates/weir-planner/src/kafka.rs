//! The Kafka source's columns and the Kafka sink's checks.

use crate::error::{PlanError, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_types::{KafkaFormat, KafkaSinkSpec, KafkaSourceSpec};

/// The columns a Kafka source produces: the payload's, then the metadata columns if asked.
pub fn source_schema(spec: &KafkaSourceSpec) -> Result<SchemaRef> {
    let mut fields = match spec.format {
        KafkaFormat::Raw => vec![Field::new("value", DataType::Binary, true)],
        _ => spec
            .schema
            .iter()
            .map(|(n, t)| Ok(Field::new(n, crate::types::parse_type(t)?, true)))
            .collect::<Result<Vec<_>>>()?,
    };
    if spec.metadata_columns {
        fields.push(Field::new("_key", DataType::Binary, true));
        fields.push(Field::new("_partition", DataType::Int32, false));
        fields.push(Field::new("_offset", DataType::Int64, false));
        fields.push(Field::new("_timestamp", DataType::Int64, true));
        fields.push(Field::new("_headers", DataType::Utf8, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Checks the spec against the input schema; returns the key column's index.
pub fn sink_key(
    spec: &KafkaSinkSpec,
    schema: &arrow::datatypes::SchemaRef,
    op: &str,
) -> Result<Option<usize>> {
    if spec.format == KafkaFormat::Raw
        && (schema.fields().len() != 1
            || !matches!(
                schema.field(0).data_type(),
                DataType::Binary | DataType::Utf8
            ))
    {
        return Err(PlanError::Invalid(format!(
            "kafka_sink {op:?}: format raw needs exactly one binary or string column"
        )));
    }
    spec.key
        .as_ref()
        .map(|k| {
            schema.index_of(k).map_err(|_| {
                PlanError::Invalid(format!(
                    "kafka_sink {op:?}: key column {k:?} is not in its input"
                ))
            })
        })
        .transpose()
}
