//! Event time: watermarks generated per source partition and combined as a minimum.
//!
//! A source subtask keeps, per partition it reads, the largest event time seen; its watermark
//! is the smallest of those minus the configured delay. A partition without data holds the
//! watermark back (its first events may be early) unless it has ended or has been silent for
//! the idle timeout. When every partition has ended the watermark is [`END`], which closes
//! every window. A task with several inputs forwards the minimum of its inputs' watermarks,
//! ended inputs excluded. Watermarks only move forward.

use std::time::{Duration, Instant};

/// No event time yet.
pub const MIN: i64 = i64::MIN;
/// The end of event time: all input has been read.
pub const END: i64 = i64::MAX;

/// A source subtask's watermark over its partitions.
#[derive(Debug)]
pub struct WatermarkGen {
    delay: i64,
    idle: Option<Duration>,
    max: Vec<Option<i64>>,
    last_seen: Vec<Instant>,
    emitted: i64,
    /// Every open partition was idle at the last update.
    all_idle: bool,
}

impl WatermarkGen {
    pub fn new(partitions: usize, delay_ms: u64, idle_timeout_ms: u64, now: Instant) -> Self {
        Self {
            delay: delay_ms.min(i64::MAX as u64) as i64,
            idle: (idle_timeout_ms > 0).then(|| Duration::from_millis(idle_timeout_ms)),
            max: vec![None; partitions],
            last_seen: vec![now; partitions],
            emitted: MIN,
            all_idle: false,
        }
    }

    /// How far the watermark stays behind a partition's largest event time.
    pub fn delay(&self) -> i64 {
        self.delay
    }

    /// The watermark emitted so far ([`MIN`] before the first).
    pub fn current(&self) -> i64 {
        self.emitted
    }

    /// Whether every open partition was idle at the last update: the source holds nothing
    /// back.
    pub fn idle(&self) -> bool {
        self.all_idle
    }

    /// The source did not read for `pause` on purpose (watermark alignment held it): that
    /// time does not count as its partitions' silence.
    pub fn paused(&mut self, pause: Duration) {
        for t in &mut self.last_seen {
            *t += pause;
        }
    }

    /// Partitions that appeared while running (a Kafka source's discovery): each holds the
    /// watermark back until it has data, ends or idles, as the first ones did.
    pub fn ensure_partitions(&mut self, partitions: usize, now: Instant) {
        if partitions > self.max.len() {
            self.max.resize(partitions, None);
            self.last_seen.resize(partitions, now);
        }
    }

    /// Records a batch (partition, largest event time in it), if any, and returns the new
    /// watermark if it advanced.
    pub fn update(
        &mut self,
        batch: Option<(usize, i64)>,
        ended: &dyn Fn(usize) -> bool,
        now: Instant,
    ) -> Option<i64> {
        if let Some((p, ts)) = batch {
            if let Some(m) = self.max.get_mut(p) {
                *m = Some(m.map_or(ts, |old| old.max(ts)));
                self.last_seen[p] = now;
            }
        }
        let mut w = END;
        let mut open = 0;
        for p in 0..self.max.len() {
            if ended(p) {
                continue;
            }
            if self
                .idle
                .is_some_and(|idle| now.duration_since(self.last_seen[p]) >= idle)
            {
                open += 1;
                continue;
            }
            open += 1;
            match self.max[p] {
                None => {
                    self.all_idle = false;
                    return None;
                }
                Some(m) => w = w.min(m.saturating_sub(self.delay)),
            }
        }
        self.all_idle = open > 0 && w == END;
        if self.all_idle {
            return None; // every open partition is idle: hold, do not jump to the end
        }
        (w > self.emitted).then(|| {
            self.emitted = w;
            w
        })
    }
}

/// A task's watermark: the minimum over its open inputs.
#[derive(Debug)]
pub struct InputWatermarks {
    per_input: Vec<i64>,
    ended: Vec<bool>,
    emitted: i64,
}

impl InputWatermarks {
    pub fn new(inputs: usize) -> Self {
        Self {
            per_input: vec![MIN; inputs],
            ended: vec![false; inputs],
            emitted: MIN,
        }
    }

    fn combined(&mut self) -> Option<i64> {
        let w = self
            .per_input
            .iter()
            .zip(&self.ended)
            .filter(|(_, e)| !**e)
            .map(|(w, _)| *w)
            .min()?;
        (w > self.emitted).then(|| {
            self.emitted = w;
            w
        })
    }

    /// Input `i` sent watermark `w`: the task's new watermark, if it advanced.
    pub fn on_watermark(&mut self, i: usize, w: i64) -> Option<i64> {
        if let Some(old) = self.per_input.get_mut(i) {
            *old = (*old).max(w);
        }
        self.combined()
    }

    /// Input `i` ended: it holds nothing back any more.
    pub fn on_end(&mut self, i: usize) -> Option<i64> {
        if let Some(e) = self.ended.get_mut(i) {
            *e = true;
        }
        self.combined()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_watermark_is_the_slowest_partition_minus_the_delay() {
        let t0 = Instant::now();
        let never = |_| false;
        let mut g = WatermarkGen::new(2, 100, 0, t0);
        assert_eq!(
            g.update(Some((0, 1000)), &never, t0),
            None,
            "partition 1 has no data"
        );
        assert_eq!(g.update(Some((1, 500)), &never, t0), Some(400));
        assert_eq!(
            g.update(Some((1, 450)), &never, t0),
            None,
            "never backwards"
        );
        assert_eq!(g.update(Some((1, 2000)), &never, t0), Some(900));
        // Partition 0 ends: only partition 1 counts.
        assert_eq!(g.update(None, &|p| p == 0, t0), Some(1900));
        assert_eq!(g.update(None, &|_| true, t0), Some(END));
    }

    #[test]
    fn a_partition_that_appears_holds_the_watermark_until_it_has_data() {
        let t0 = Instant::now();
        let never = |_: usize| false;
        let mut g = WatermarkGen::new(1, 0, 0, t0);
        assert_eq!(g.update(Some((0, 1000)), &never, t0), Some(1000));
        g.ensure_partitions(2, t0);
        assert_eq!(
            g.update(Some((0, 2000)), &never, t0),
            None,
            "partition 1 has no data"
        );
        assert_eq!(g.update(Some((1, 1500)), &never, t0), Some(1500));
    }

    #[test]
    fn idle_partitions_do_not_hold_the_watermark() {
        let t0 = Instant::now();
        let never = |_| false;
        let mut g = WatermarkGen::new(2, 0, 1000, t0);
        assert_eq!(g.update(Some((0, 100)), &never, t0), None);
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(
            g.update(Some((0, 200)), &never, later),
            Some(200),
            "partition 1 idle"
        );
        assert_eq!(
            g.update(None, &never, later + Duration::from_secs(5)),
            None,
            "all idle: hold"
        );
    }

    #[test]
    fn task_watermark_is_the_minimum_over_open_inputs() {
        let mut w = InputWatermarks::new(3);
        assert_eq!(w.on_watermark(0, 10), None);
        assert_eq!(w.on_watermark(1, 20), None);
        assert_eq!(w.on_watermark(2, 5), Some(5));
        assert_eq!(w.on_watermark(2, 30), Some(10));
        assert_eq!(w.on_end(0), Some(20));
        assert_eq!(w.on_watermark(1, 15), None, "an input never goes back");
        assert_eq!(w.on_end(1), Some(30));
        assert_eq!(w.on_end(2), None);
    }
}
