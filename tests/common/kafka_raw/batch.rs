// ---------------------------------------------------------------------------------------------
// Record batch (magic v2) parsing
// ---------------------------------------------------------------------------------------------

use super::wire::{crc32c, invalid, Decoder};
use super::RawRecord;
use std::io;

pub(super) struct Batch {
    pub(super) last_offset: i64,
    pub(super) producer_id: i64,
    pub(super) producer_epoch: i16,
    pub(super) content: BatchContent,
}

pub(super) enum BatchContent {
    Control { commit: bool },
    Records(Vec<RawRecord>),
}

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// baseOffset(8) + batchLength(4): the part of a batch not counted in batchLength.
const BATCH_LOG_OVERHEAD: usize = 12;
/// Bytes from baseOffset up to and including the records count.
const BATCH_HEADER_LEN: usize = 61;

/// Parses the complete batches in a Fetch `records` field. A trailing partial batch (cut by
/// max_bytes, which Kafka allows) is ignored; the caller fetches again from the next offset.
pub(super) fn parse_batches(mut buf: &[u8], partition: i32) -> io::Result<Vec<Batch>> {
    let mut out = Vec::new();
    while buf.len() >= BATCH_LOG_OVERHEAD {
        let batch_len = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if batch_len < 0 {
            return Err(invalid(format!(
                "partition {partition}: negative batch length {batch_len}"
            )));
        }
        let total = BATCH_LOG_OVERHEAD + batch_len as usize;
        if buf.len() < total {
            break; // partial batch at the end of the response
        }
        out.push(parse_batch(&buf[..total], partition)?);
        buf = &buf[total..];
    }
    Ok(out)
}

fn parse_batch(batch: &[u8], partition: i32) -> io::Result<Batch> {
    let mut r = Decoder::new(batch, "record batch");
    let base_offset = r.i64()?;
    r.i32()?; // batch_length (already checked by the caller)
    r.i32()?; // partition_leader_epoch
    let magic = r.i8()?;
    if magic != 2 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: message format magic {magic} not supported (only v2)"
        )));
    }
    let crc = r.u32()?;
    let computed = crc32c(&batch[21..]); // CRC covers attributes .. end of batch
    if crc != computed {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: batch CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
        )));
    }
    let attributes = r.i16()?;
    let last_offset_delta = r.i32()?;
    let base_timestamp = r.i64()?;
    let max_timestamp = r.i64()?;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    r.i32()?; // base_sequence
    let count = r.i32()?;
    debug_assert_eq!(r.pos, BATCH_HEADER_LEN);

    let compression = attributes & ATTR_COMPRESSION_MASK;
    if compression != 0 {
        let codec = match compression {
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        };
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "kafka_raw: partition {partition} offset {base_offset}: compressed record batch \
                 ({codec}) not supported; produce with compression.type=none"
            ),
        ));
    }
    if count < 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: negative record count"
        )));
    }
    let last_offset = base_offset + last_offset_delta as i64;
    let transactional = attributes & ATTR_TRANSACTIONAL != 0;

    if attributes & ATTR_CONTROL != 0 {
        // A control batch holds one control record; its key is (version i16, type i16),
        // type 0 = ABORT, 1 = COMMIT.
        let rec = parse_record(&mut r, partition, base_offset, base_timestamp)?;
        let key = rec.key.unwrap_or_default();
        if key.len() < 4 {
            return Err(invalid(format!(
                "partition {partition} offset {base_offset}: short control record key"
            )));
        }
        let kind = i16::from_be_bytes([key[2], key[3]]);
        let commit = match kind {
            0 => false,
            1 => true,
            other => {
                return Err(invalid(format!(
                "partition {partition} offset {base_offset}: unknown control record type {other}"
            )))
            }
        };
        return Ok(Batch {
            last_offset: rec.offset,
            producer_id,
            producer_epoch,
            content: BatchContent::Control { commit },
        });
    }

    // Capacity bounded by the bytes present, so a bogus count cannot trigger a huge allocation.
    let mut records = Vec::with_capacity((count as usize).min(r.remaining()));
    for _ in 0..count {
        let mut rec = parse_record(&mut r, partition, base_offset, base_timestamp)?;
        if attributes & ATTR_LOG_APPEND_TIME != 0 {
            rec.timestamp = max_timestamp;
        }
        rec.producer_id = producer_id;
        rec.producer_epoch = producer_epoch;
        rec.transactional = transactional;
        records.push(rec);
    }
    if r.remaining() != 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: {} trailing bytes after {count} records",
            r.remaining()
        )));
    }
    Ok(Batch {
        last_offset,
        producer_id,
        producer_epoch,
        content: BatchContent::Records(records),
    })
}

/// Parses one record (varint-framed) of a v2 batch.
fn parse_record(
    r: &mut Decoder,
    partition: i32,
    base_offset: i64,
    base_timestamp: i64,
) -> io::Result<RawRecord> {
    let len = r.varint()?;
    if len < 0 {
        return Err(invalid(format!(
            "partition {partition} offset {base_offset}: negative record length"
        )));
    }
    let body = r.bytes(len as usize)?;
    let mut rr = Decoder::new(body, "record");
    rr.i8()?; // record attributes (unused)
    let timestamp_delta = rr.varlong()?;
    let offset_delta = rr.varint()?;
    let key = rr.varint_bytes()?.map(<[u8]>::to_vec);
    let value = rr.varint_bytes()?.map(<[u8]>::to_vec);
    let header_count = rr.varint()?;
    let mut headers = Vec::with_capacity((header_count.max(0) as usize).min(rr.remaining()));
    for _ in 0..header_count {
        let hkey = rr.varint_bytes()?.unwrap_or_default();
        let hkey = String::from_utf8(hkey.to_vec()).map_err(|_| {
            invalid(format!(
                "partition {partition} offset {base_offset}: header key not UTF-8"
            ))
        })?;
        let hval = rr.varint_bytes()?.map(<[u8]>::to_vec);
        headers.push((hkey, hval));
    }
    Ok(RawRecord {
        partition,
        offset: base_offset + offset_delta as i64,
        key,
        value,
        headers,
        timestamp: base_timestamp + timestamp_delta,
        producer_id: -1,
        producer_epoch: -1,
        transactional: false,
    })
}
