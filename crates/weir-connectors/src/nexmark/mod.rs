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
//!
//! `sequence` holds the event model (what event `n` is, field by field) and `source` the
//! source operator (partitions, positions, batches); the tables' schemas and the projection a
//! spec asks for are the planner's (`weir_planner::nexmark`).

mod sequence;
mod source;

pub use sequence::{
    Auction, Bid, Person, Sequence, BASE_TIME_MS, FIRST_AUCTION_ID, FIRST_PERSON_ID,
};
pub use source::NexmarkSource;
pub use weir_planner::nexmark::{schema, table_schema, ts_type};
