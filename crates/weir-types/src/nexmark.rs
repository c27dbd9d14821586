//! The `nexmark` source's settings: the Nexmark benchmark's three streams (people, auctions,
//! bids) as tables over one deterministic event sequence.

use serde::{Deserialize, Serialize};

/// Which of the Nexmark streams a source produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NexmarkTable {
    Person,
    Auction,
    #[default]
    Bid,
}

impl NexmarkTable {
    /// The table's columns and their types (`int64`, `utf8`, `timestamp`: milliseconds), in
    /// order; none is nullable.
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            NexmarkTable::Person => &[
                ("id", "int64"),
                ("name", "utf8"),
                ("email_address", "utf8"),
                ("credit_card", "utf8"),
                ("city", "utf8"),
                ("state", "utf8"),
                ("date_time", "timestamp"),
                ("extra", "utf8"),
            ],
            NexmarkTable::Auction => &[
                ("id", "int64"),
                ("item_name", "utf8"),
                ("description", "utf8"),
                ("initial_bid", "int64"),
                ("reserve", "int64"),
                ("date_time", "timestamp"),
                ("expires", "timestamp"),
                ("seller", "int64"),
                ("category", "int64"),
                ("extra", "utf8"),
            ],
            NexmarkTable::Bid => &[
                ("auction", "int64"),
                ("bidder", "int64"),
                ("price", "int64"),
                ("channel", "utf8"),
                ("url", "utf8"),
                ("date_time", "timestamp"),
                ("extra", "utf8"),
            ],
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "person" | "people" => Some(NexmarkTable::Person),
            "auction" | "auctions" => Some(NexmarkTable::Auction),
            "bid" | "bids" => Some(NexmarkTable::Bid),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }
}

/// One table of the Nexmark event sequence. Event `n` of the sequence is a person, an auction
/// or a bid by `n` modulo the sum of the proportions (1:3:46 by default, as in the benchmark),
/// and every field is a function of `n` and `seed`, so the three tables of one sequence agree
/// (a bid's auction and bidder exist, or will) however the sources are split or restarted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NexmarkSpec {
    pub table: NexmarkTable,
    /// Events of the whole sequence (all three kinds); `None` runs unbounded.
    pub events: Option<u64>,
    /// Events per second of the whole sequence, wall clock, over all subtasks; 0: as fast as
    /// possible.
    pub rate: u64,
    /// Event-time spacing: the sequence's events per second of event time (`date_time`).
    pub event_rate: u64,
    pub seed: u64,
    /// Logical partitions of the sequence (the unit of rescaling); 0 means 32.
    pub partitions: u32,
    pub batch_size: u32,
    pub person_proportion: u32,
    pub auction_proportion: u32,
    pub bid_proportion: u32,
    /// Columns to produce, in this order; empty: all of the table's columns.
    pub columns: Vec<String>,
}

impl Default for NexmarkSpec {
    fn default() -> Self {
        Self {
            table: NexmarkTable::Bid,
            events: None,
            rate: 0,
            event_rate: 10_000,
            seed: 0,
            partitions: 32,
            batch_size: 8192,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            columns: Vec::new(),
        }
    }
}

impl NexmarkSpec {
    pub fn validate(&self, op: &str) -> Result<(), String> {
        let total = u64::from(self.person_proportion)
            + u64::from(self.auction_proportion)
            + u64::from(self.bid_proportion);
        if self.person_proportion == 0 || self.auction_proportion == 0 || total == 0 {
            return Err(format!(
                "nexmark {op:?}: person_proportion and auction_proportion must be at least 1 (bids need people and auctions)"
            ));
        }
        if self.event_rate == 0 {
            return Err(format!("nexmark {op:?}: event_rate must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(format!("nexmark {op:?}: batch_size must be at least 1"));
        }
        Ok(())
    }
}
