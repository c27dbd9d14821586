// ---------------------------------------------------------------------------------------------
// Read-committed classification
// ---------------------------------------------------------------------------------------------

use super::{ControlMarker, RawEntry, RawRecord, TxnStatus};
use std::collections::HashMap;

/// Decides each record's transaction status from the markers of the same partition: a
/// transactional record is settled by the first marker of its producer id at a higher offset.
/// A COMMIT only commits records of its own producer epoch: when the first marker after a
/// record is a newer epoch's COMMIT, the record's transaction was fenced by a new producer
/// and never ended in this partition. Kafka writes an ABORT marker for it when the new
/// producer initialises, so a read-committed reader never sees it; such records count as
/// aborted here (and reported on stderr, so a run shows whether the broker ever left one).
pub(super) fn classify(records: Vec<RawRecord>, markers: &[ControlMarker]) -> Vec<RawEntry> {
    // Markers per producer id, in offset order (markers are pushed in offset order).
    let mut by_pid: HashMap<i64, Vec<&ControlMarker>> = HashMap::new();
    for m in markers {
        by_pid.entry(m.producer_id).or_default().push(m);
    }
    let mut fenced = 0usize;
    let entries = records
        .into_iter()
        .map(|record| {
            let status = if !record.transactional {
                TxnStatus::NonTransactional
            } else {
                let next_marker = by_pid
                    .get(&record.producer_id)
                    .and_then(|ms| ms.iter().find(|m| m.offset > record.offset));
                match next_marker {
                    Some(m) if m.commit && m.producer_epoch == record.producer_epoch => {
                        TxnStatus::Committed
                    }
                    Some(m) if m.commit => {
                        fenced += 1;
                        TxnStatus::Aborted
                    }
                    Some(_) => TxnStatus::Aborted,
                    None => TxnStatus::Open,
                }
            };
            RawEntry { record, status }
        })
        .collect();
    if fenced > 0 {
        eprintln!(
            "kafka_raw: {fenced} records of a fenced producer epoch had no marker of their own before a newer epoch's COMMIT (a broker gap; counted as aborted)"
        );
    }
    entries
}
