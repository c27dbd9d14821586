//! Validation driver for kafka_raw.rs: dumps what the module reads, in a line format that
//! validate.py parses. Usage: dump ADDR TOPIC
//!   PARTS <ids...>                                   (from partitions())
//!   PART <p> <hw> <lso> <next_offset> <broker_aborted_txns>
//!   MARK <p> <offset> <pid> <epoch> COMMIT|ABORT
//!   RAW <p> <offset> <status> <txn 0/1> <pid> <ts> <key hex|-> <value hex|-> <nheaders> [<hkey>=<hval hex|->]...
//!   RC <p> <offset> <key hex|-> <value hex|->         (from read_committed())
//!   SUMMARY raw=<n> aborted=<n> open=<n> committed_view=<n> markers=<n>
mod kafka_raw;
use kafka_raw::*;

fn hex(b: &Option<Vec<u8>>) -> String {
    match b {
        None => "-".to_string(),
        Some(v) if v.is_empty() => "~".to_string(), // empty but non-null
        Some(v) => v.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} ADDR TOPIC", args[0]);
        std::process::exit(2);
    }
    let (addr, topic) = (&args[1], &args[2]);
    let run = || -> std::io::Result<()> {
        let parts = partitions(addr, topic)?;
        println!("PARTS {}", parts.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "));
        let t0 = std::time::Instant::now();
        let log = read_all_raw(addr, topic, &parts)?;
        let t_raw = t0.elapsed();
        for p in &log.partitions {
            println!("PART {} {} {} {} {}", p.partition, p.high_watermark, p.last_stable_offset, p.next_offset, p.broker_aborted_txns);
        }
        for m in &log.markers {
            println!("MARK {} {} {} {} {}", m.partition, m.offset, m.producer_id, m.producer_epoch, if m.commit { "COMMIT" } else { "ABORT" });
        }
        for e in &log.entries {
            let r = &e.record;
            let hs: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={}", hex(v))).collect();
            println!("RAW {} {} {:?} {} {} {} {} {} {} {}", r.partition, r.offset, e.status, r.transactional as u8,
                     r.producer_id, r.timestamp, hex(&r.key), hex(&r.value), hs.len(), hs.join(" "));
        }
        let rc = read_committed(addr, topic, &parts)?;
        for r in &rc {
            println!("RC {} {} {} {}", r.partition, r.offset, hex(&r.key), hex(&r.value));
        }
        println!("SUMMARY raw={} aborted={} open={} committed_view={} markers={} read_all_raw_ms={}",
                 log.entries.len(), log.aborted_count(), log.open_count(), rc.len(), log.markers.len(), t_raw.as_millis());
        Ok(())
    };
    if let Err(e) = run() {
        println!("ERROR {:?}: {}", e.kind(), e);
        std::process::exit(1);
    }
}
