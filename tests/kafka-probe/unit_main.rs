//! Offline unit checks of kafka_raw.rs internals (no broker): batch encoding/decoding, CRC,
//! truncated trailing batch, compressed batch error, read-committed classification.
//! Build: rustc --edition 2021 -O -o unit unit_main.rs && ./unit
#![allow(dead_code)]
include!("kafka_raw.rs");

fn varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 { out.push(z as u8); break; }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}
fn vbytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b { None => varlong(out, -1), Some(b) => { varlong(out, b.len() as i64); out.extend_from_slice(b); } }
}

/// Encodes a v2 batch. records: (key, value, headers).
fn batch(base: i64, attrs: i16, pid: i64, recs: &[(Option<&[u8]>, Option<&[u8]>, Vec<(&str, Option<&[u8]>)>)]) -> Vec<u8> {
    let mut body = Vec::new(); // from attributes to end (CRC'd part)
    put_i16(&mut body, attrs);
    put_i32(&mut body, recs.len() as i32 - 1);
    put_i64(&mut body, 1_000); // base timestamp
    put_i64(&mut body, 1_000 + recs.len() as i64);
    put_i64(&mut body, pid);
    put_i16(&mut body, 0);
    put_i32(&mut body, 0);
    put_i32(&mut body, recs.len() as i32);
    for (i, (k, v, hs)) in recs.iter().enumerate() {
        let mut r = vec![0u8];
        varlong(&mut r, i as i64); // timestamp delta
        varlong(&mut r, i as i64); // offset delta
        vbytes(&mut r, *k);
        vbytes(&mut r, *v);
        varlong(&mut r, hs.len() as i64);
        for (hk, hv) in hs { vbytes(&mut r, Some(hk.as_bytes())); vbytes(&mut r, *hv); }
        varlong(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let mut out = Vec::new();
    put_i64(&mut out, base);
    put_i32(&mut out, (4 + 1 + 4 + body.len()) as i32);
    put_i32(&mut out, 0); // leader epoch
    out.push(2);
    out.extend_from_slice(&crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}
fn marker(base: i64, pid: i64, commit: bool) -> Vec<u8> {
    let key = [0u8, 0, 0, commit as u8];
    let val = [0u8, 0, 0, 0, 0, 0];
    batch(base, ATTR_TRANSACTIONAL | ATTR_CONTROL, pid, &[(Some(&key), Some(&val), vec![])])
}

fn check(name: &str, ok: bool) {
    println!("{} {name}", if ok { "PASS" } else { "FAIL" });
    if !ok { std::process::exit(1); }
}

fn main() -> io::Result<()> {
    check("crc32c(\"123456789\") == 0xE3069283", crc32c(b"123456789") == 0xE306_9283);

    // Partition log: pid 7 txn (offsets 0-1), plain (2), pid 8 txn (3), pid 7 COMMIT (4),
    // pid 8 ABORT (5), pid 9 txn (6, open), plain with headers/null value (7-8).
    let t = ATTR_TRANSACTIONAL;
    let mut log = Vec::new();
    log.extend(batch(0, t, 7, &[(Some(b"a"), Some(b"v0"), vec![]), (None, Some(b"v1"), vec![])]));
    log.extend(batch(2, 0, -1, &[(None, Some(b"plain2"), vec![])]));
    log.extend(batch(3, t, 8, &[(None, Some(b"v3"), vec![])]));
    log.extend(marker(4, 7, true));
    log.extend(marker(5, 8, false));
    log.extend(batch(6, t, 9, &[(None, Some(b"v6"), vec![])]));
    log.extend(batch(7, 0, -1, &[(Some(b""), None, vec![("h", Some(b"x")), ("n", None)]), (None, Some(b"plain8"), vec![])]));
    let full_len = log.len();
    // Truncated copy of another batch at the end, as a broker may send when max_bytes cuts it.
    let extra = batch(9, 0, -1, &[(None, Some(b"cut"), vec![])]);
    log.extend_from_slice(&extra[..extra.len() - 3]);

    let batches = parse_batches(&log, 0)?;
    check("7 whole batches parsed, truncated trailing batch ignored", batches.len() == 7);
    check("parse of only-truncated data yields no batch (caller then grows max_bytes)",
          parse_batches(&log[full_len..], 0)?.is_empty());

    let mut recs = Vec::new();
    let mut marks = Vec::new();
    for b in batches {
        match b.content {
            BatchContent::Control { commit } => marks.push(ControlMarker { partition: 0, offset: b.last_offset, producer_id: b.producer_id, producer_epoch: b.producer_epoch, commit }),
            BatchContent::Records(r) => recs.extend(r),
        }
    }
    let entries = classify(recs, &marks);
    let got: Vec<(i64, TxnStatus)> = entries.iter().map(|e| (e.record.offset, e.status)).collect();
    use TxnStatus::*;
    check(&format!("statuses {got:?}"), got == vec![(0, Committed), (1, Committed), (2, NonTransactional), (3, Aborted), (6, Open), (7, NonTransactional), (8, NonTransactional)]);
    let r7 = &entries[5].record;
    check("empty key, null value, headers decoded",
          r7.key == Some(vec![]) && r7.value.is_none() && r7.headers == vec![("h".to_string(), Some(b"x".to_vec())), ("n".to_string(), None)]);
    check("timestamps = base + delta", entries[1].record.timestamp == 1_001);
    check("markers: 2 (commit pid 7 @4, abort pid 8 @5)", marks.len() == 2 && marks[0].commit && marks[0].offset == 4 && !marks[1].commit && marks[1].producer_id == 8);

    // Compressed batch: attributes codec bits = 1 (gzip); CRC recomputed so the codec check is hit.
    let gz = batch(0, 1, -1, &[(None, Some(b"zz"), vec![])]);
    let e = parse_batches(&gz, 0).err();
    check(&format!("compressed batch rejected: {e:?}"), e.map(|e| e.kind() == io::ErrorKind::Unsupported).unwrap_or(false));

    // Corrupted payload -> CRC mismatch error, not a panic.
    let mut bad = batch(0, 0, -1, &[(None, Some(b"abc"), vec![])]);
    let n = bad.len(); bad[n - 2] ^= 0xff;
    let e = parse_batches(&bad, 0).err();
    check(&format!("corrupted batch rejected: {e:?}"), e.is_some());

    // Garbage record length inside a batch with a valid CRC -> error, not a panic.
    let mut body_bad = batch(0, 0, -1, &[(None, Some(b"abc"), vec![])]);
    body_bad[61] = 0x7e; // record length varint = 63 > available
    let crc = crc32c(&body_bad[21..]); body_bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let e = parse_batches(&body_bad, 0).err();
    check(&format!("overlong record length rejected: {e:?}"), e.is_some());

    // varlong edge values
    for v in [0i64, -1, 1, 63, -64, 64, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN] {
        let mut b = Vec::new(); varlong(&mut b, v);
        let got = Decoder::new(&b, "t").varlong()?;
        if got != v { check(&format!("varlong {v}"), false); }
    }
    check("varlong round-trips edge values", true);
    Ok(())
}
