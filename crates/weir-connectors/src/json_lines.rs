//! JSON lines as Flink's json format writes them. Arrow's writer writes a NaN or an infinity
//! as `null`, a silently different value; Flink (Jackson) writes the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`. Lines without such a value are arrow's, unchanged; the few
//! with one are rewritten with the string in place.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use weir_runtime::error::{Result, RuntimeError};

/// Appends `batch` to `out` as JSON lines.
pub(crate) fn write(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    // (row, column) of every non-finite float, with its text.
    let mut odd: BTreeMap<usize, Vec<(usize, &'static str)>> = BTreeMap::new();
    for (c, col) in batch.columns().iter().enumerate() {
        let mut note = |row: usize, v: f64| {
            if !v.is_finite() {
                let text = if v.is_nan() {
                    "NaN"
                } else if v > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                odd.entry(row).or_default().push((c, text));
            }
        };
        match col.data_type() {
            DataType::Float64 => {
                let a = col.as_primitive::<Float64Type>();
                for r in (0..a.len()).filter(|r| a.is_valid(*r)) {
                    note(r, a.value(r));
                }
            }
            DataType::Float32 => {
                let a = col.as_primitive::<Float32Type>();
                for r in (0..a.len()).filter(|r| a.is_valid(*r)) {
                    note(r, f64::from(a.value(r)));
                }
            }
            _ => {}
        }
    }
    let start = out.len();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
        w.write(batch)?;
        w.finish()?;
    }
    if odd.is_empty() {
        return Ok(());
    }
    let text = out.split_off(start);
    let schema = batch.schema();
    for (row, line) in text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        match odd.get(&row) {
            None => out.extend_from_slice(line),
            Some(fields) => {
                let mut obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(line)
                        .map_err(|e| RuntimeError::Internal(format!("arrow's JSON line: {e}")))?;
                for (c, t) in fields {
                    obj.insert(
                        schema.field(*c).name().clone(),
                        serde_json::Value::String((*t).to_string()),
                    );
                }
                let bytes = serde_json::to_vec(&obj)
                    .map_err(|e| RuntimeError::Internal(format!("JSON line: {e}")))?;
                out.extend_from_slice(&bytes);
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn non_finite_floats_are_strings_as_in_flink() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    Some(f64::NAN),
                    Some(f64::NEG_INFINITY),
                    None,
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        write(&batch, &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["x"], serde_json::json!(1.5));
        assert_eq!(lines[1]["x"], serde_json::json!("NaN"));
        assert_eq!(lines[2]["x"], serde_json::json!("-Infinity"));
        assert_eq!(lines[3]["k"], serde_json::json!(4));
        assert!(lines[3].get("x").is_none_or(|v| v.is_null()));
    }
}
