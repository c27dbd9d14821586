//! Encoding of batches for the network: one self-contained Arrow IPC stream (schema and batch)
//! per batch, so a receiver can decode any frame on its own.

use crate::error::{Result, RuntimeError};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 512);
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf)
}

pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch> {
    let mut r = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    r.next()
        .ok_or_else(|| RuntimeError::Input("empty batch frame".into()))?
        .map_err(RuntimeError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn round_trip() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let b =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        assert_eq!(decode_batch(&encode_batch(&b).unwrap()).unwrap(), b);
        assert!(decode_batch(b"garbage").is_err());
    }
}
