//! Key hashing over Arrow columns: the one function both hash partitioning and keyed state use,
//! so a key always lands on the subtask that owns its key group.

use crate::error::{Result, RuntimeError};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use weir_types::keygroup::{combine, hash_bytes, hash_i64};

pub use weir_planner::is_key_type;

macro_rules! ints {
    ($col:expr, $t:ty, $out:expr, $first:expr) => {{
        let a = $col.as_primitive::<$t>();
        for (h, v) in $out.iter_mut().zip(a.values().iter()) {
            let x = hash_i64(*v as i64);
            *h = if $first { x } else { combine(*h, x) };
        }
    }};
}

/// Stable 64-bit hashes of the key columns, one per row (nulls hash like 0 / empty).
pub fn hash_columns(cols: &[ArrayRef], out: &mut Vec<u64>) -> Result<()> {
    let rows = cols.first().map(|c| c.len()).unwrap_or(0);
    out.clear();
    out.resize(rows, 0);
    for (i, col) in cols.iter().enumerate() {
        let first = i == 0;
        match col.data_type() {
            DataType::Int64 => ints!(col, Int64Type, out, first),
            DataType::Int32 => ints!(col, Int32Type, out, first),
            DataType::Int16 => ints!(col, Int16Type, out, first),
            DataType::Int8 => ints!(col, Int8Type, out, first),
            DataType::UInt64 => ints!(col, UInt64Type, out, first),
            DataType::UInt32 => ints!(col, UInt32Type, out, first),
            DataType::UInt16 => ints!(col, UInt16Type, out, first),
            DataType::UInt8 => ints!(col, UInt8Type, out, first),
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                for (r, h) in out.iter_mut().enumerate() {
                    let x = hash_bytes(a.value(r).as_bytes());
                    *h = if first { x } else { combine(*h, x) };
                }
            }
            DataType::LargeUtf8 => {
                let a = col.as_string::<i64>();
                for (r, h) in out.iter_mut().enumerate() {
                    let x = hash_bytes(a.value(r).as_bytes());
                    *h = if first { x } else { combine(*h, x) };
                }
            }
            DataType::Boolean => {
                let a = col.as_boolean();
                for (r, h) in out.iter_mut().enumerate() {
                    let x = hash_i64(i64::from(a.value(r)));
                    *h = if first { x } else { combine(*h, x) };
                }
            }
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                // Times hash as their integer value (window starts and ends key joins).
                let c = arrow::compute::cast(col, &DataType::Int64)?;
                ints!(c, Int64Type, out, first)
            }
            other => {
                return Err(RuntimeError::Plan(format!(
                    "cannot hash a key column of type {other}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn int_widths_hash_alike_and_strings_are_stable() {
        let mut a = vec![];
        let mut b = vec![];
        hash_columns(&[Arc::new(Int64Array::from(vec![1, 2, 3]))], &mut a).unwrap();
        hash_columns(&[Arc::new(Int32Array::from(vec![1, 2, 3]))], &mut b).unwrap();
        assert_eq!(a, b);
        hash_columns(&[Arc::new(StringArray::from(vec!["abc"]))], &mut a).unwrap();
        assert_eq!(a, vec![hash_bytes(b"abc")]);
    }
}
