// ---------------------------------------------------------------------------------------------
// Encoding / decoding primitives
// ---------------------------------------------------------------------------------------------

use std::io;

pub(super) fn put_i16(b: &mut Vec<u8>, v: i16) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(super) fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(super) fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(super) fn put_str(b: &mut Vec<u8>, s: &str) {
    put_i16(b, s.len() as i16);
    b.extend_from_slice(s.as_bytes());
}

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("kafka_raw: {msg}"))
}

pub(super) fn kafka_error(context: &str, code: i16) -> io::Error {
    let name = match code {
        1 => "OFFSET_OUT_OF_RANGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        35 => "UNSUPPORTED_VERSION",
        _ => "see Kafka protocol error codes",
    };
    io::Error::other(format!(
        "kafka_raw: {context}: broker error {code} ({name})"
    ))
}

/// Bounds-checked big-endian / varint reader over a byte slice.
pub(super) struct Decoder<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Decoder { buf, pos: 0, what }
    }
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(super) fn bytes(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(invalid(format!(
                "{} truncated: need {n} bytes at {}, have {}",
                self.what,
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    pub(super) fn i8(&mut self) -> io::Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub(super) fn i16(&mut self) -> io::Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(super) fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(super) fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(super) fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// Length of a (non-nullable) array; a null array (-1) is read as empty.
    pub(super) fn array_len(&mut self) -> io::Result<usize> {
        let n = self.i32()?;
        if n > 0 && n as usize > self.remaining() {
            return Err(invalid(format!(
                "{}: array length {n} exceeds remaining bytes",
                self.what
            )));
        }
        Ok(n.max(0) as usize)
    }
    pub(super) fn skip_i32_array(&mut self) -> io::Result<()> {
        for _ in 0..self.array_len()? {
            self.i32()?;
        }
        Ok(())
    }
    pub(super) fn nullable_string(&mut self) -> io::Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let s = self.bytes(n as usize)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| invalid(format!("{}: string is not UTF-8", self.what)))
    }
    pub(super) fn string(&mut self) -> io::Result<String> {
        self.nullable_string()?
            .ok_or_else(|| invalid(format!("{}: unexpected null string", self.what)))
    }
    pub(super) fn nullable_bytes(&mut self) -> io::Result<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(n as usize).map(Some)
    }
    /// Zig-zag varlong (at most 10 bytes).
    pub(super) fn varlong(&mut self) -> io::Result<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.array::<1>()?[0];
            raw |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(invalid(format!(
            "{}: varint longer than 10 bytes",
            self.what
        )))
    }
    /// Zig-zag varint that must fit in i32.
    pub(super) fn varint(&mut self) -> io::Result<i32> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| invalid(format!("{}: varint {v} out of i32 range", self.what)))
    }
    /// Varint-length-prefixed bytes; length -1 means null.
    pub(super) fn varint_bytes(&mut self) -> io::Result<Option<&'a [u8]>> {
        let n = self.varint()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(n as usize).map(Some)
    }
}

/// CRC-32C (Castagnoli), as used by record batch v2. Bitwise; fast enough for tests.
pub(super) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
