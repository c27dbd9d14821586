//! The Nexmark event model: one deterministic sequence of people, auctions and bids, each
//! field a function of the event number and the seed.

use std::fmt::Write;
use weir_types::keygroup::fmix64;
use weir_types::{NexmarkSpec, NexmarkTable};

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
pub(super) const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
pub(super) const URLS: [&str; 4] = [
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
    pub(super) total: u64,
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
    pub(super) fn person_id(&self, n: u64) -> i64 {
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
    pub(super) fn write_person_name(&self, n: u64, out: &mut String) {
        let (first, last) = self.person_names(n);
        out.push_str(first);
        out.push(' ');
        out.push_str(last);
    }
    pub(super) fn write_person_email(&self, n: u64, out: &mut String) {
        let (first, last) = self.person_names(n);
        // The names are ASCII.
        out.extend(first.chars().map(|c| c.to_ascii_lowercase()));
        out.push('.');
        out.extend(last.chars().map(|c| c.to_ascii_lowercase()));
        let _ = write!(out, "{}@nexmark.com", self.person_id(n));
    }
    pub(super) fn write_person_card(&self, n: u64, out: &mut String) {
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
    pub(super) fn person_city(&self, n: u64) -> &'static str {
        CITIES[(self.rng(n, 13) % CITIES.len() as u64) as usize]
    }
    #[inline]
    pub(super) fn person_state(&self, n: u64) -> &'static str {
        STATES[(self.rng(n, 14) % STATES.len() as u64) as usize]
    }
    #[inline]
    pub(super) fn auction_id(&self, n: u64) -> i64 {
        let (epoch, off) = self.by_total.div_rem(n);
        FIRST_AUCTION_ID + (epoch * self.auctions + off - self.people) as i64
    }
    pub(super) fn write_auction_item(&self, n: u64, out: &mut String) {
        let _ = write!(out, "item {}", self.auction_id(n));
    }
    #[inline]
    pub(super) fn auction_description(&self, n: u64) -> &'static str {
        DESCRIPTIONS[(self.rng(n, 21) % DESCRIPTIONS.len() as u64) as usize]
    }
    #[inline]
    pub(super) fn auction_initial_bid(&self, n: u64) -> i64 {
        self.price(n, 20)
    }
    #[inline]
    pub(super) fn auction_reserve(&self, n: u64) -> i64 {
        self.auction_initial_bid(n) + self.price(n, 22)
    }
    #[inline]
    pub(super) fn auction_expires(&self, n: u64) -> i64 {
        self.date_time(n) + 1000 * (1 + (self.rng(n, 23) % 20) as i64)
    }
    #[inline]
    pub(super) fn auction_seller(&self, n: u64) -> i64 {
        FIRST_PERSON_ID + self.pick(n, 24, self.people_upto(n)) as i64
    }
    #[inline]
    pub(super) fn auction_category(&self, n: u64) -> i64 {
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
    pub(super) fn bid_auction(&self, n: u64) -> i64 {
        FIRST_AUCTION_ID + self.pick(n, 31, self.auctions_upto(n)) as i64
    }
    #[inline]
    pub(super) fn bid_bidder(&self, n: u64) -> i64 {
        FIRST_PERSON_ID + self.pick(n, 33, self.people_upto(n)) as i64
    }
    #[inline]
    pub(super) fn bid_price(&self, n: u64) -> i64 {
        self.price(n, 35)
    }
    #[inline]
    pub(super) fn bid_channel(&self, n: u64) -> usize {
        (self.rng(n, 30) % CHANNELS.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
}
