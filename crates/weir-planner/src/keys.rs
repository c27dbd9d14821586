//! Which column types can be keys (of hash partitioning, keyed state, joins).

use arrow::datatypes::DataType;

/// Whether a column type can be a key.
pub fn is_key_type(t: &DataType) -> bool {
    // `is_integer` is exactly the eight integer types `weir_runtime::hashing::hash_columns`
    // handles; the two change together.
    t.is_integer()
        || matches!(
            t,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Boolean
                | DataType::Timestamp(_, _)
                | DataType::Date32
                | DataType::Date64
        )
}
