//! The `nexmark` source: the Nexmark benchmark's people, auctions and bids.
//!
//! One deterministic event sequence underlies the three tables: event `n` is a person, an
//! auction or a bid by `n` modulo the sum of the proportions, and each of its fields is a
//! function of `n` and the seed ([`Sequence`]). A source produces one table: its partitions
//! walk the event numbers `p, p + partitions, …` and keep the events of its kind, so the
//! `person`, `auction` and `bid` sources of one job agree on every id whatever their
//! parallelism. The checkpointed position is, per partition, how far it has walked.
//!
//! The model follows the benchmark's (Beam's and Flink's generators): ids start at 1000; a bid
//! goes to a "hot" auction (every 100th) half the time and otherwise to one of the 100 newest
//! auctions, with bidders and sellers chosen the same way among people; prices are
//! log-uniform between 1 and 10^6 (times 100); auctions are in categories 10 to 14; event time
//! advances by `1000 / event_rate` ms per event from 2015-07-15. Strings come from small fixed
//! sets and `extra` is empty, so a row is cheap to make (Weir's choice, see `docs/sql.md`).

use super::{OperatorContext, Restored, Source, SourcePoll};
use crate::error::{Result, RuntimeError};
use arrow::array::{ArrayRef, Int64Array, StringArray, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_types::keygroup::fmix64;
use weir_types::{CheckpointId, NexmarkSpec, NexmarkTable};

/// 2015-07-15T00:00:00Z, the benchmark's base time.
pub const BASE_TIME_MS: i64 = 1_436_918_400_000;
pub const FIRST_PERSON_ID: i64 = 1000;
pub const FIRST_AUCTION_ID: i64 = 1000;
/// Every `HOT_STRIDE`-th auction (person) is hot.
const HOT_STRIDE: u64 = 100;
/// Non-hot bids (sellers, bidders) pick among this many of the newest auctions (people).
const IN_FLIGHT: u64 = 100;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const URLS: [&str; 4] = [
    "https://www.nexmark.com/google/item.htm?query=1",
    "https://www.nexmark.com/facebook/item.htm?query=1",
    "https://www.nexmark.com/baidu/item.htm?query=1",
    "https://www.nexmark.com/apple/item.htm?query=1",
];
const DESCRIPTIONS: [&str; 4] = [
    "a fine item",
    "barely used",
    "in its original box",
    "collector's edition",
];

pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// All columns of a table, in their declared order (the list is `NexmarkTable::columns`).
pub fn table_schema(table: NexmarkTable) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns()
            .iter()
            .map(|(name, ty)| {
                let t = match *ty {
                    "int64" => DataType::Int64,
                    "timestamp" => ts_type(),
                    _ => DataType::Utf8,
                };
                Field::new(*name, t, false)
            })
            .collect::<Vec<_>>(),
    ))
}

/// The source's schema: the table's columns the spec asks for, in its order.
pub fn schema(spec: &NexmarkSpec) -> Result<SchemaRef> {
    let full = table_schema(spec.table);
    Ok(Arc::new(full.project(&column_indices(spec, &full)?)?))
}

fn column_indices(spec: &NexmarkSpec, full: &Schema) -> Result<Vec<usize>> {
    if spec.columns.is_empty() {
        return Ok((0..full.fields().len()).collect());
    }
    spec.columns
        .iter()
        .map(|c| {
            full.index_of(c).map_err(|_| {
                let have: Vec<&str> = full.fields().iter().map(|f| f.name().as_str()).collect();
                RuntimeError::Plan(format!(
                    "the nexmark {} table has no column {c:?} (columns: {})",
                    spec.table.name(),
                    have.join(", ")
                ))
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: &'static str,
    pub state: &'static str,
    pub date_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: &'static str,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: &'static str,
    pub url: &'static str,
    pub date_time: i64,
}

/// Division by a divisor fixed at run time, as a multiplication (a 64-bit `div` per row
/// and field was a good part of the source's cost).
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: u64,
    /// floor((2^64 - 1) / d): the quotient estimate is at most two below the true one
    m: u64,
}

impl Divisor {
    fn new(d: u64) -> Self {
        let d = d.max(1);
        Self { d, m: u64::MAX / d }
    }

    /// (n / d, n % d)
    #[inline]
    fn div_rem(self, n: u64) -> (u64, u64) {
        let mut q = ((u128::from(n) * u128::from(self.m)) >> 64) as u64;
        let mut r = n - q * self.d;
        while r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }
}

/// The event sequence: what event `n` is, as a pure function of `n` and the spec.
#[derive(Debug, Clone)]
pub struct Sequence {
    people: u64,
    auctions: u64,
    total: u64,
    seed: u64,
    event_rate: u64,
    by_total: Divisor,
    by_rate: Divisor,
}

impl Sequence {
    pub fn new(spec: &NexmarkSpec) -> Self {
        let people = u64::from(spec.person_proportion.max(1));
        let auctions = u64::from(spec.auction_proportion.max(1));
        Self {
            people,
            auctions,
            total: people + auctions + u64::from(spec.bid_proportion),
            seed: fmix64(spec.seed ^ 0x6e65_786d_6172_6b00),
            event_rate: spec.event_rate.max(1),
            by_total: Divisor::new(people + auctions + u64::from(spec.bid_proportion)),
            by_rate: Divisor::new(spec.event_rate.max(1)),
        }
    }

    #[inline]
    pub fn kind(&self, n: u64) -> NexmarkTable {
        let (_, off) = self.by_total.div_rem(n);
        if off < self.people {
            NexmarkTable::Person
        } else if off < self.people + self.auctions {
            NexmarkTable::Auction
        } else {
            NexmarkTable::Bid
        }
    }

    #[inline]
    pub fn date_time(&self, n: u64) -> i64 {
        // u64 arithmetic while it cannot overflow (a u128 division per row cost more than
        // the rest of the timestamp)
        let ms = match n.checked_mul(1000) {
            Some(x) => self.by_rate.div_rem(x).0,
            None => (u128::from(n) * 1000 / u128::from(self.event_rate)) as u64,
        };
        BASE_TIME_MS + ms as i64
    }

    fn rng(&self, n: u64, stream: u64) -> u64 {
        fmix64(
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ self.seed
                ^ stream.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        )
    }

    /// People created at or before event `n` (at least 1: every epoch starts with people).
    #[inline]
    fn people_upto(&self, n: u64) -> u64 {
        let (epoch, off) = self.by_total.div_rem(n);
        epoch * self.people + (off + 1).min(self.people)
    }

    /// Auctions created at or before event `n`.
    #[inline]
    fn auctions_upto(&self, n: u64) -> u64 {
        let (epoch, off) = self.by_total.div_rem(n);
        epoch * self.auctions + (off + 1).saturating_sub(self.people).min(self.auctions)
    }

    /// A recent one of `count` (base 0): hot half the time, else one of the newest.
    fn pick(&self, n: u64, stream: u64, count: u64) -> u64 {
        let last = count.saturating_sub(1);
        if self.rng(n, stream).is_multiple_of(2) {
            (last / HOT_STRIDE) * HOT_STRIDE
        } else {
            let r = self.rng(n, stream + 1);
            // a constant divisor in the common case: the compiler multiplies
            last - if count >= IN_FLIGHT {
                r % IN_FLIGHT
            } else {
                r % count.max(1)
            }
        }
    }

    /// Nexmark's price: 100 × 10^(6u) for a uniform u, rounded (log-uniform from 1 to 10^6
    /// cents × 100). As 2^(6u·log2 10): `exp2` is several times cheaper than `powf`, which
    /// was a third of a bid-only query's CPU.
    #[inline]
    fn price(&self, n: u64, stream: u64) -> i64 {
        let u = (self.rng(n, stream) >> 11) as f64 / (1u64 << 53) as f64;
        let p = (u * (6.0 * std::f64::consts::LOG2_10)).exp2() * 100.0;
        // rounding half up, for the positive values here (`f64::round` is a libm call)
        (p + 0.5) as i64
    }

    pub fn person(&self, n: u64) -> Person {
        let text = |write: fn(&Self, u64, &mut String)| {
            let mut s = String::new();
            write(self, n, &mut s);
            s
        };
        Person {
            id: self.person_id(n),
            name: text(Self::write_person_name),
            email_address: text(Self::write_person_email),
            credit_card: text(Self::write_person_card),
            city: self.person_city(n),
            state: self.person_state(n),
            date_time: self.date_time(n),
        }
    }

    pub fn auction(&self, n: u64) -> Auction {
        let mut item_name = String::new();
        self.write_auction_item(n, &mut item_name);
        Auction {
            id: self.auction_id(n),
            item_name,
            description: self.auction_description(n),
            initial_bid: self.auction_initial_bid(n),
            reserve: self.auction_reserve(n),
            date_time: self.date_time(n),
            expires: self.auction_expires(n),
            seller: self.auction_seller(n),
            category: self.auction_category(n),
        }
    }

    // A person's and an auction's fields one by one, as a bid's below, so a source computes
    // only the columns a query reads, and writes strings into one buffer instead of
    // formatting a new one per field (building whole rows was most of q8's source cost).
    #[inline]
    fn person_id(&self, n: u64) -> i64 {
        let (epoch, off) = self.by_total.div_rem(n);
        FIRST_PERSON_ID + (epoch * self.people + off) as i64
    }
    #[inline]
    fn person_names(&self, n: u64) -> (&'static str, &'static str) {
        (
            FIRST_NAMES[(self.rng(n, 10) % FIRST_NAMES.len() as u64) as usize],
            LAST_NAMES[(self.rng(n, 11) % LAST_NAMES.len() as u64) as usize],
        )
    }
    fn write_person_name(&self, n: u64, out: &mut String) {
        let (first, last) = self.person_names(n);
        out.push_str(first);
        out.push(' ');
        out.push_str(last);
    }
    fn write_person_email(&self, n: u64, out: &mut String) {
        let (first, last) = self.person_names(n);
        // The names are ASCII.
        out.extend(first.chars().map(|c| c.to_ascii_lowercase()));
        out.push('.');
        out.extend(last.chars().map(|c| c.to_ascii_lowercase()));
        let _ = write!(out, "{}@nexmark.com", self.person_id(n));
    }
    fn write_person_card(&self, n: u64, out: &mut String) {
        let card = self.rng(n, 12);
        let _ = write!(
            out,
            "{:04} {:04} {:04} {:04}",
            card % 10_000,
            (card >> 16) % 10_000,
            (card >> 32) % 10_000,
            (card >> 48) % 10_000
        );
    }
    #[inline]
    fn person_city(&self, n: u64) -> &'static str {
        CITIES[(self.rng(n, 13) % CITIES.len() as u64) as usize]
    }
    #[inline]
    fn person_state(&self, n: u64) -> &'static str {
        STATES[(self.rng(n, 14) % STATES.len() as u64) as usize]
    }
    #[inline]
    fn auction_id(&self, n: u64) -> i64 {
        let (epoch, off) = self.by_total.div_rem(n);
        FIRST_AUCTION_ID + (epoch * self.auctions + off - self.people) as i64
    }
    fn write_auction_item(&self, n: u64, out: &mut String) {
        let _ = write!(out, "item {}", self.auction_id(n));
    }
    #[inline]
    fn auction_description(&self, n: u64) -> &'static str {
        DESCRIPTIONS[(self.rng(n, 21) % DESCRIPTIONS.len() as u64) as usize]
    }
    #[inline]
    fn auction_initial_bid(&self, n: u64) -> i64 {
        self.price(n, 20)
    }
    #[inline]
    fn auction_reserve(&self, n: u64) -> i64 {
        self.auction_initial_bid(n) + self.price(n, 22)
    }
    #[inline]
    fn auction_expires(&self, n: u64) -> i64 {
        self.date_time(n) + 1000 * (1 + (self.rng(n, 23) % 20) as i64)
    }
    #[inline]
    fn auction_seller(&self, n: u64) -> i64 {
        FIRST_PERSON_ID + self.pick(n, 24, self.people_upto(n)) as i64
    }
    #[inline]
    fn auction_category(&self, n: u64) -> i64 {
        10 + (self.rng(n, 26) % 5) as i64
    }

    pub fn bid(&self, n: u64) -> Bid {
        let c = self.bid_channel(n);
        Bid {
            auction: self.bid_auction(n),
            bidder: self.bid_bidder(n),
            price: self.bid_price(n),
            channel: CHANNELS[c],
            url: URLS[c],
            date_time: self.date_time(n),
        }
    }

    // A bid's fields one by one, so a source computes only the columns a query reads.
    #[inline]
    fn bid_auction(&self, n: u64) -> i64 {
        FIRST_AUCTION_ID + self.pick(n, 31, self.auctions_upto(n)) as i64
    }
    #[inline]
    fn bid_bidder(&self, n: u64) -> i64 {
        FIRST_PERSON_ID + self.pick(n, 33, self.people_upto(n)) as i64
    }
    #[inline]
    fn bid_price(&self, n: u64) -> i64 {
        self.price(n, 35)
    }
    #[inline]
    fn bid_channel(&self, n: u64) -> usize {
        (self.rng(n, 30) % CHANNELS.len() as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PartitionPos {
    partition: u32,
    /// Event numbers of this partition walked so far.
    walked: u64,
}

pub struct NexmarkSource {
    seq: Sequence,
    table: NexmarkTable,
    events: Option<u64>,
    partitions: u32,
    owned: Vec<PartitionPos>,
    columns: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    rate: f64,
    started: Option<Instant>,
    walked_since_start: u64,
}

impl NexmarkSource {
    pub fn new(
        ctx: &OperatorContext,
        spec: &NexmarkSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let partitions = if spec.partitions == 0 {
            32
        } else {
            spec.partitions
        };
        let mut owned: Vec<PartitionPos> = (0..partitions)
            .filter(|p| p % ctx.parallelism == ctx.subtask)
            .map(|partition| PartitionPos {
                partition,
                walked: 0,
            })
            .collect();
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let positions: Vec<PartitionPos> = weir_state::decode(bytes)?;
                for pos in positions {
                    if pos.partition >= partitions {
                        return Err(RuntimeError::Plan(format!(
                            "nexmark {:?}: the snapshot has partition {} but the job has {partitions}",
                            ctx.op_id, pos.partition
                        )));
                    }
                    if let Some(o) = owned.iter_mut().find(|o| o.partition == pos.partition) {
                        o.walked = o.walked.max(pos.walked);
                    }
                }
            }
        }
        let full = table_schema(spec.table);
        let columns = column_indices(spec, &full)?;
        let share = owned.len() as f64 / f64::from(partitions);
        Ok(Self {
            seq: Sequence::new(spec),
            table: spec.table,
            events: spec.events,
            partitions,
            owned,
            schema: Arc::new(full.project(&columns)?),
            columns,
            batch_size: spec.batch_size.max(1) as usize,
            rate: spec.rate as f64 * share,
            started: None,
            walked_since_start: 0,
        })
    }

    /// Event number of a partition's `k`-th step, if below the sequence's end.
    fn event(&self, partition: u32, k: u64) -> Option<u64> {
        let n = u64::from(partition) + k * u64::from(self.partitions);
        match self.events {
            Some(end) if n >= end => None,
            _ => Some(n),
        }
    }

    /// The batch of events `ns` (all of this source's table), its columns only.
    fn build(&self, ns: &[u64]) -> Result<RecordBatch> {
        let seq = &self.seq;
        let cols: Vec<ArrayRef> = match self.table {
            // Column by column: only the fields the query reads are computed.
            NexmarkTable::Bid => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.bid_auction(*n)),
                    1 => ints(ns, |n| seq.bid_bidder(*n)),
                    2 => ints(ns, |n| seq.bid_price(*n)),
                    3 => strs(ns, |n| CHANNELS[seq.bid_channel(*n)]),
                    4 => strs(ns, |n| URLS[seq.bid_channel(*n)]),
                    5 => times(ns, |n| seq.date_time(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
            NexmarkTable::Auction => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.auction_id(*n)),
                    1 => texts(ns, |n, out| seq.write_auction_item(n, out)),
                    2 => strs(ns, |n| seq.auction_description(*n)),
                    3 => ints(ns, |n| seq.auction_initial_bid(*n)),
                    4 => ints(ns, |n| seq.auction_reserve(*n)),
                    5 => times(ns, |n| seq.date_time(*n)),
                    6 => times(ns, |n| seq.auction_expires(*n)),
                    7 => ints(ns, |n| seq.auction_seller(*n)),
                    8 => ints(ns, |n| seq.auction_category(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
            NexmarkTable::Person => self
                .columns
                .iter()
                .map(|c| match c {
                    0 => ints(ns, |n| seq.person_id(*n)),
                    1 => texts(ns, |n, out| seq.write_person_name(n, out)),
                    2 => texts(ns, |n, out| seq.write_person_email(n, out)),
                    3 => texts(ns, |n, out| seq.write_person_card(n, out)),
                    4 => strs(ns, |n| seq.person_city(*n)),
                    5 => strs(ns, |n| seq.person_state(*n)),
                    6 => times(ns, |n| seq.date_time(*n)),
                    _ => strs(ns, |_| ""),
                })
                .collect(),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

fn ints<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
}

fn times<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(
        rows.iter().map(f),
    ))
}

fn strs<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> &'a str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
}

/// A string column written row by row into one reused buffer.
fn texts(ns: &[u64], write: impl Fn(u64, &mut String)) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(ns.len(), ns.len() * 16);
    let mut buf = String::new();
    for n in ns {
        buf.clear();
        write(*n, &mut buf);
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

#[async_trait]
impl Source for NexmarkSource {
    async fn poll_next(&mut self) -> Result<SourcePoll> {
        let count = self.owned.len();
        let open = |s: &Self, i: usize| s.event(s.owned[i].partition, s.owned[i].walked);
        if (0..count).all(|i| open(self, i).is_none()) {
            return Ok(SourcePoll::Exhausted);
        }
        if self.rate > 0.0 {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(self.walked_since_start as f64 / self.rate);
            if due > Instant::now() {
                return Ok(SourcePoll::Wait(due));
            }
        }
        // Walk the owned partitions in lockstep, one step of each at a time, far enough for
        // a full batch of this table's rows (or less under a rate limit). A batch then spans
        // a short stretch of event time over all partitions, so the watermark advances with
        // every batch; walking one partition per batch made it advance once per round of
        // all of them (about 28 s of event time with 16 partitions), which held windows and
        // join state that much longer.
        let mut max_walk = (self.batch_size as u64) * self.seq.total;
        if self.rate > 0.0 {
            max_walk = max_walk.min(((self.rate / 100.0) as u64).max(1));
        }
        let mut ns = Vec::with_capacity(self.batch_size);
        let mut walked = 0;
        while walked < max_walk && ns.len() < self.batch_size {
            let mut any = false;
            for i in 0..count {
                let Some(n) = open(self, i) else { continue };
                any = true;
                self.owned[i].walked += 1;
                walked += 1;
                if self.seq.kind(n) == self.table {
                    ns.push(n);
                }
            }
            if !any {
                break;
            }
        }
        self.walked_since_start += walked;
        if ns.is_empty() {
            return Ok(SourcePoll::Wait(Instant::now()));
        }
        Ok(SourcePoll::Batch(self.build(&ns)?))
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>> {
        Ok(Some(weir_state::encode(&self.owned)?))
    }

    // The next event each partition will walk is the earliest it can still produce, and
    // event time only grows with the event number (`date_time`; an auction's `expires` is
    // later still). With the sequence's proportions (1, 3, 46 of 50) and 32 partitions, the
    // odd partitions never hold a person: without this, a person subtask owning only odd
    // partitions read the whole run without a watermark and held every window downstream.
    fn progress_time(&self) -> Option<i64> {
        self.owned
            .iter()
            .filter_map(|o| self.event(o.partition, o.walked))
            .min()
            .map(|n| self.seq.date_time(n) - 1)
    }

    // One watermark for the subtask: its partitions advance in lockstep (their positions
    // differ by at most one batch, even after a rescale), so the largest time of a batch
    // minus the delay holds for all of them.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisor_matches_division() {
        for d in [1u64, 2, 3, 7, 50, 10_000, 1 << 40, u64::MAX / 3, u64::MAX] {
            let div = Divisor::new(d);
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for n in (0..2000u64).chain([u64::MAX, u64::MAX - 1, d, d - 1, d.wrapping_add(1)]) {
                x = fmix64(x ^ n);
                for v in [n, x] {
                    assert_eq!(div.div_rem(v), (v / d, v % d), "{v} / {d}");
                }
            }
        }
    }
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use std::collections::BTreeSet;
    use weir_types::{DeliveryGuarantee, JobId};

    fn ctx(subtask: u32, parallelism: u32) -> OperatorContext {
        OperatorContext {
            job_id: JobId("j".into()),
            op_id: "n".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            attempt: 0,
            guarantee: DeliveryGuarantee::ExactlyOnce,
            checkpointing: true,
            state_backend: Default::default(),
            input_schema: None,
            input_schemas: vec![],
            output_schema: table_schema(NexmarkTable::Bid),
            inflight: Default::default(),
        }
    }

    async fn drain(s: &mut NexmarkSource, limit: usize, out: &mut Vec<RecordBatch>) -> bool {
        for _ in 0..limit {
            match s.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => out.push(b),
                SourcePoll::Exhausted => return true,
                SourcePoll::Wait(_) => {}
                SourcePoll::NeedLease => unreachable!(),
            }
        }
        false
    }

    fn spec(table: NexmarkTable, events: u64) -> NexmarkSpec {
        NexmarkSpec {
            table,
            events: Some(events),
            partitions: 8,
            batch_size: 100,
            ..Default::default()
        }
    }

    #[test]
    fn bids_refer_to_people_and_auctions_that_exist() {
        let seq = Sequence::new(&NexmarkSpec::default());
        let mut people = BTreeSet::new();
        let mut auctions = BTreeSet::new();
        let mut hot = 0;
        for n in 0..50_000 {
            match seq.kind(n) {
                NexmarkTable::Person => assert!(people.insert(seq.person(n).id)),
                NexmarkTable::Auction => {
                    let a = seq.auction(n);
                    assert!(
                        people.contains(&a.seller),
                        "seller {} of event {n}",
                        a.seller
                    );
                    assert!((10..15).contains(&a.category));
                    assert!(a.expires > a.date_time && a.reserve > a.initial_bid);
                    assert!(auctions.insert(a.id));
                }
                NexmarkTable::Bid => {
                    let b = seq.bid(n);
                    assert!(
                        auctions.contains(&b.auction),
                        "auction {} of bid {n}",
                        b.auction
                    );
                    assert!(people.contains(&b.bidder), "bidder {} of bid {n}", b.bidder);
                    assert!((100..=100_000_000).contains(&b.price), "price {}", b.price);
                    hot += i32::from((b.auction - FIRST_AUCTION_ID) % 100 == 0);
                }
            }
            assert!(seq.date_time(n) >= seq.date_time(n.saturating_sub(1)));
        }
        assert_eq!(people.len(), 1000);
        assert_eq!(auctions.len(), 3000);
        assert_eq!(*people.first().unwrap(), FIRST_PERSON_ID);
        assert!(
            hot > 20_000,
            "about half the bids go to hot auctions: {hot}"
        );
        assert_eq!(
            seq.date_time(10_000),
            BASE_TIME_MS + 1000,
            "10 000 events per second"
        );
    }

    #[tokio::test]
    async fn every_bid_once_across_a_rescale_and_a_restore() {
        let s = spec(NexmarkTable::Bid, 10_007);
        // Two subtasks run a while and snapshot; three restore from it and finish.
        let mut first = Vec::new();
        let mut snaps = Vec::new();
        for sub in 0..2 {
            let mut src = NexmarkSource::new(&ctx(sub, 2), &s, None).unwrap();
            drain(&mut src, 7, &mut first).await;
            snaps.push((sub, bytes::Bytes::from(src.snapshot(1).unwrap().unwrap())));
        }
        let restored = Restored {
            job_id: "j".into(),
            old_parallelism: 2,
            snapshots: snaps,
        };
        let mut rest = Vec::new();
        for sub in 0..3 {
            let mut src = NexmarkSource::new(&ctx(sub, 3), &s, Some(restored.clone())).unwrap();
            assert!(drain(&mut src, 10_000, &mut rest).await);
        }
        let seq = Sequence::new(&s);
        let expected: Vec<(i64, i64, i64)> = (0..10_007)
            .filter(|n| seq.kind(*n) == NexmarkTable::Bid)
            .map(|n| {
                let b = seq.bid(n);
                (b.date_time, b.auction, b.price)
            })
            .collect();
        let mut got: Vec<(i64, i64, i64)> = first
            .iter()
            .chain(&rest)
            .flat_map(|b| {
                let t = b
                    .column(5)
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                let a = b.column(0).as_primitive::<Int64Type>();
                let p = b.column(2).as_primitive::<Int64Type>();
                (0..b.num_rows())
                    .map(|i| (t.value(i), a.value(i), p.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        got.sort_unstable();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_unstable();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected_sorted);
    }

    #[tokio::test]
    async fn columns_are_projected_in_the_asked_order() {
        let mut s = spec(NexmarkTable::Person, 500);
        s.columns = vec!["state".into(), "id".into()];
        let mut src = NexmarkSource::new(&ctx(0, 1), &s, None).unwrap();
        let mut out = Vec::new();
        assert!(drain(&mut src, 100, &mut out).await);
        let got = out[0].schema();
        let names: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["state", "id"]);
        let ids: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!(ids, 10, "one person per 50 events");
        s.columns = vec!["nope".into()];
        let err = schema(&s).unwrap_err().to_string();
        assert!(err.contains("no column \"nope\""), "{err}");
    }
}
