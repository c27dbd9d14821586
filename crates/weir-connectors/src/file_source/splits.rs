//! Which byte ranges of which files a file-source subtask reads, and how far it got: the
//! source's protocol, without I/O.
//!
//! A file is cut into splits: byte ranges of `split_len` (the last one shorter), or one split
//! when it is small, not line-oriented (Parquet) or splitting is off. Split `k` of a file is
//! read by subtask `(base + k) % parallelism`, where `base` is the file's position in the
//! sorted listing (a bounded source: whole files spread as evenly as before, one file's splits
//! over consecutive subtasks) or a hash of its path (a monitored source: a file that appears
//! later moves no other file's splits). Line formats read the records that *start* in the
//! range (Hadoop's rule), so a record crossing a boundary is read once, by the split it
//! starts in.
//!
//! Every subtask's snapshot holds the files it has seen (path, size, modification time,
//! split length) and the progress of the splits it owns: the byte offset of the next record
//! (Parquet: the next row), or done. A restore merges every old subtask's snapshot (union
//! state, as Flink's split enumerator keeps it), so ownership can change with the
//! parallelism and each split still resumes where its last owner stopped.
//!
//! A monitored source forgets files: the *horizon* is the newest modification time seen
//! minus `forget_after`; files older than it are not read when they appear and are dropped
//! from the snapshot once their owned splits are done. A file below the horizon at restore
//! is read only where a snapshot says a split is still under way (its other splits were done
//! and forgotten by their owners).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How far one split is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// The next record starts at byte `offset` (Parquet: row `offset` of the file); `rows`
    /// rows of the split were read before it.
    At {
        offset: u64,
        rows: u64,
    },
    /// A snapshot from before byte offsets: read the split (then always a whole file) from its
    /// start and drop the first `rows` rows.
    SkipRows(u64),
    Done,
}

impl Progress {
    fn rank(&self) -> (u8, u64) {
        match self {
            Progress::SkipRows(r) => (0, *r),
            Progress::At { offset, .. } => (1, *offset),
            Progress::Done => (2, 0),
        }
    }
}

/// A file the source has seen, and the progress of the splits its subtask owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size: u64,
    pub modified_ms: i64,
    /// 0: one split, the whole file.
    pub split_len: u64,
    pub progress: BTreeMap<u32, Progress>,
}

impl FileEntry {
    pub fn split_count(&self) -> u32 {
        if self.split_len == 0 {
            1
        } else {
            self.size.div_ceil(self.split_len).max(1) as u32
        }
    }

    pub fn range(&self, k: u32) -> (u64, u64) {
        if self.split_len == 0 {
            (0, self.size)
        } else {
            let start = u64::from(k) * self.split_len;
            (start, (start + self.split_len).min(self.size))
        }
    }
}

/// One split to read: bytes `start..end` of `file` (records starting there), resumed at
/// `resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub file: String,
    pub index: u32,
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub resume: Progress,
}

/// A file as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub modified_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub subtask: u32,
    pub parallelism: u32,
    /// Cut files larger than this into splits of this size; 0: never.
    pub split_bytes: u64,
    /// Monitored: files placed by a hash of their path, and forgotten behind the horizon.
    pub monitoring: bool,
    pub forget_after_ms: u64,
}

/// The snapshot, as stored (after [`MAGIC`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SnapshotV2 {
    horizon_ms: Option<i64>,
    files: Vec<(String, FileEntry)>,
}

/// Starts every snapshot written since byte offsets; no earlier snapshot (a bincode
/// `Vec<(String, u64)>`, whose first byte is a length marker, never 0xff) starts so.
const MAGIC: &[u8; 8] = b"\xffWEIRFS2";

/// What one old subtask's snapshot held.
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    /// Files seen and progress by split.
    Files {
        horizon_ms: Option<i64>,
        files: Vec<(String, FileEntry)>,
    },
    /// Before byte offsets: rows emitted per whole file the old subtask owned.
    Rows(Vec<(String, u64)>),
}

pub fn decode(bytes: &[u8]) -> Result<Restored, String> {
    if let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) {
        let s: SnapshotV2 = weir_state::decode(rest).map_err(|e| e.to_string())?;
        Ok(Restored::Files {
            horizon_ms: s.horizon_ms,
            files: s.files,
        })
    } else {
        weir_state::decode(bytes)
            .map(Restored::Rows)
            .map_err(|e| e.to_string())
    }
}

/// The splits of one subtask: files seen, the progress of its own, and what to read next.
#[derive(Debug)]
pub struct Splits {
    layout: Layout,
    files: BTreeMap<String, FileEntry>,
    horizon_ms: Option<i64>,
    newest_ms: Option<i64>,
    /// Owned splits to read, in file and split order (a set: queueing twice is a no-op).
    queue: BTreeSet<(String, u32)>,
}

impl Splits {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            files: BTreeMap::new(),
            horizon_ms: None,
            newest_ms: None,
            queue: BTreeSet::new(),
        }
    }

    /// Merges the old subtasks' snapshots. Returns whether any of them was from before byte
    /// offsets (then the source lists the path again: those snapshots hold only the files
    /// their subtask owned).
    pub fn restore(&mut self, restored: Vec<Restored>) -> bool {
        let mut legacy = false;
        for r in restored {
            match r {
                Restored::Files { horizon_ms, files } => {
                    self.horizon_ms = self.horizon_ms.max(horizon_ms);
                    for (path, e) in files {
                        self.newest_ms = self.newest_ms.max(Some(e.modified_ms));
                        match self.files.get_mut(&path) {
                            None => {
                                self.files.insert(path, e);
                            }
                            Some(have) => {
                                for (k, p) in e.progress {
                                    let slot = have.progress.entry(k).or_insert(p);
                                    if p.rank() > slot.rank() {
                                        *slot = p;
                                    }
                                }
                            }
                        }
                    }
                }
                Restored::Rows(rows) => {
                    legacy = true;
                    for (path, n) in rows {
                        // The size is learnt from the listing that follows.
                        let e = self.files.entry(path).or_insert(FileEntry {
                            size: 0,
                            modified_ms: i64::MIN,
                            split_len: 0,
                            progress: BTreeMap::new(),
                        });
                        e.progress.insert(0, Progress::SkipRows(n));
                    }
                }
            }
        }
        legacy
    }

    /// Takes a listing: new files (at or above the horizon) are added and their splits this
    /// subtask owns queued; legacy entries learn their size. Returns how many files were new.
    pub fn discover(&mut self, listing: Vec<Listed>) -> usize {
        let mut added = 0;
        for f in listing {
            if let Some(e) = self.files.get_mut(&f.path) {
                if e.modified_ms == i64::MIN {
                    e.size = f.size;
                    e.modified_ms = f.modified_ms;
                }
                continue;
            }
            if self.layout.monitoring && self.horizon_ms.is_some_and(|h| f.modified_ms < h) {
                continue;
            }
            let split_len = if self.layout.split_bytes > 0 && f.size > self.layout.split_bytes {
                self.layout.split_bytes
            } else {
                0
            };
            self.newest_ms = self.newest_ms.max(Some(f.modified_ms));
            self.files.insert(
                f.path,
                FileEntry {
                    size: f.size,
                    modified_ms: f.modified_ms,
                    split_len,
                    progress: BTreeMap::new(),
                },
            );
            added += 1;
        }
        // Legacy entries the listing no longer shows: nothing to read.
        self.files.retain(|_, e| e.modified_ms != i64::MIN);
        if self.layout.monitoring {
            if let Some(n) = self.newest_ms {
                let h = n.saturating_sub(self.layout.forget_after_ms as i64);
                self.horizon_ms = self.horizon_ms.max(Some(h));
            }
        }
        self.queue_owned();
        added
    }

    /// The subtask that reads split `k` of `path`.
    #[cfg(test)]
    pub fn owner(&self, path: &str, k: u32) -> u32 {
        let position = self.files.keys().take_while(|p| p.as_str() < path).count();
        self.owner_at(path, position, k)
    }

    /// [`Splits::owner`] of a file at `position` in the sorted files.
    fn owner_at(&self, path: &str, position: usize, k: u32) -> u32 {
        let p = u64::from(self.layout.parallelism.max(1));
        let base = if self.layout.monitoring {
            fnv1a(path.as_bytes())
        } else {
            position as u64
        };
        ((base % p + u64::from(k) % p) % p) as u32
    }

    /// Queues every owned split that is neither done, queued, nor (below the horizon)
    /// without progress, recording its start as its progress.
    fn queue_owned(&mut self) {
        let horizon = self.horizon_ms;
        let me = self.layout.subtask;
        let mut owned: Vec<(String, u32)> = Vec::new();
        for (position, (path, e)) in self.files.iter().enumerate() {
            for k in 0..e.split_count() {
                if self.owner_at(path, position, k) == me {
                    owned.push((path.clone(), k));
                }
            }
        }
        for (path, k) in owned {
            let Some(e) = self.files.get_mut(&path) else {
                continue;
            };
            let below = horizon.is_some_and(|h| e.modified_ms < h);
            let start = e.range(k).0;
            match e.progress.get(&k) {
                Some(Progress::Done) => continue,
                Some(_) => {}
                None if below => {
                    // Its owner read it and forgot it.
                    e.progress.insert(k, Progress::Done);
                    continue;
                }
                None => {
                    e.progress.insert(
                        k,
                        Progress::At {
                            offset: start,
                            rows: 0,
                        },
                    );
                }
            }
            self.queue.insert((path, k));
        }
    }

    /// The next split to read, or `None` when every owned split is done.
    pub fn next(&mut self) -> Option<Split> {
        while let Some((path, k)) = self.queue.pop_first() {
            let Some(e) = self.files.get(&path) else {
                continue;
            };
            let resume = match e.progress.get(&k) {
                Some(Progress::Done) => continue,
                Some(p) => *p,
                None => Progress::At {
                    offset: e.range(k).0,
                    rows: 0,
                },
            };
            let (start, end) = e.range(k);
            return Some(Split {
                file: path,
                index: k,
                start,
                end,
                size: e.size,
                resume,
            });
        }
        None
    }

    /// Records how far split `k` of `path` is read.
    pub fn advance(&mut self, path: &str, k: u32, p: Progress) {
        if let Some(e) = self.files.get_mut(path) {
            e.progress.insert(k, p);
        }
    }

    /// Files seen.
    #[cfg(test)]
    pub fn files(&self) -> &BTreeMap<String, FileEntry> {
        &self.files
    }

    /// The snapshot: files seen and the owned splits' progress. A monitored source first
    /// forgets the files behind its horizon whose owned splits are done.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, weir_state::StateError> {
        let me = self.layout.subtask;
        let horizon = self.horizon_ms.filter(|_| self.layout.monitoring);
        let mut files = Vec::with_capacity(self.files.len());
        let mut forget = Vec::new();
        for (position, (path, e)) in self.files.iter().enumerate() {
            let mut own = e.clone();
            own.progress
                .retain(|k, _| self.owner_at(path, position, *k) == me);
            if horizon.is_some_and(|h| e.modified_ms < h)
                && own.progress.values().all(|p| *p == Progress::Done)
            {
                forget.push(path.clone());
                continue;
            }
            files.push((path.clone(), own));
        }
        // Only a monitored source forgets, and it places files by hash: no owner moves.
        for path in forget {
            self.files.remove(&path);
        }
        let mut out = MAGIC.to_vec();
        out.extend(weir_state::encode(&SnapshotV2 {
            horizon_ms: self.horizon_ms,
            files,
        })?);
        Ok(out)
    }
}

/// FNV-1a: a hash of a path that is the same in every process and release.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(subtask: u32, parallelism: u32, split_bytes: u64, monitoring: bool) -> Layout {
        Layout {
            subtask,
            parallelism,
            split_bytes,
            monitoring,
            forget_after_ms: 1000,
        }
    }

    fn listed(path: &str, size: u64, modified_ms: i64) -> Listed {
        Listed {
            path: path.into(),
            size,
            modified_ms,
        }
    }

    /// Reads every split of every subtask to the end, returning (file, split) pairs read.
    fn drain(subtasks: &mut [Splits]) -> Vec<(String, u32)> {
        let mut read = Vec::new();
        for s in subtasks.iter_mut() {
            while let Some(sp) = s.next() {
                read.push((sp.file.clone(), sp.index));
                s.advance(&sp.file, sp.index, Progress::Done);
            }
        }
        read.sort();
        read
    }

    #[test]
    fn splits_cover_a_file_once_and_spread_over_subtasks() {
        let listing = vec![listed("big", 10, 0), listed("small", 3, 0)];
        let mut subs: Vec<Splits> = (0..3)
            .map(|i| {
                let mut s = Splits::new(layout(i, 3, 4, false));
                s.discover(listing.clone());
                s
            })
            .collect();
        let firsts: Vec<Split> = subs.iter_mut().filter_map(|s| s.next()).collect();
        // big: [0,4) [4,8) [8,10) on subtasks 0, 1, 2; small (position 1): subtask 1.
        assert_eq!(
            firsts
                .iter()
                .map(|s| (s.file.as_str(), s.start, s.end))
                .collect::<Vec<_>>(),
            vec![("big", 0, 4), ("big", 4, 8), ("big", 8, 10)]
        );
        for (s, sp) in subs.iter_mut().zip(&firsts) {
            s.advance(&sp.file, sp.index, Progress::Done);
        }
        assert_eq!(drain(&mut subs), vec![("small".to_string(), 0)]);
    }

    #[test]
    fn a_rescale_resumes_every_split_where_its_owner_stopped() {
        let listing = vec![listed("a", 100, 0), listed("b", 30, 0)];
        let mut old: Vec<Splits> = (0..3)
            .map(|i| {
                let mut s = Splits::new(layout(i, 3, 25, false));
                s.discover(listing.clone());
                s
            })
            .collect();
        // Each old subtask reads part of its first split, and finishes nothing else.
        let mut expected_resume = BTreeMap::new();
        for s in old.iter_mut() {
            let sp = s.next().unwrap();
            let at = Progress::At {
                offset: sp.start + 7,
                rows: 2,
            };
            s.advance(&sp.file, sp.index, at);
            expected_resume.insert((sp.file.clone(), sp.index), at);
        }
        let snaps: Vec<Vec<u8>> = old.iter_mut().map(|s| s.snapshot().unwrap()).collect();
        let mut new: Vec<Splits> = (0..2)
            .map(|i| {
                let mut s = Splits::new(layout(i, 2, 25, false));
                let legacy = s.restore(snaps.iter().map(|b| decode(b).unwrap()).collect());
                assert!(!legacy);
                s.discover(vec![]);
                s
            })
            .collect();
        let mut all = Vec::new();
        for s in new.iter_mut() {
            while let Some(sp) = s.next() {
                let want = expected_resume
                    .get(&(sp.file.clone(), sp.index))
                    .copied()
                    .unwrap_or(Progress::At {
                        offset: sp.start,
                        rows: 0,
                    });
                assert_eq!(sp.resume, want, "{sp:?}");
                all.push((sp.file.clone(), sp.index));
                s.advance(&sp.file, sp.index, Progress::Done);
            }
        }
        all.sort();
        // a: 4 splits, b: 2 splits, each exactly once.
        assert_eq!(
            all,
            vec![
                ("a".into(), 0),
                ("a".into(), 1),
                ("a".into(), 2),
                ("a".into(), 3),
                ("b".into(), 0),
                ("b".into(), 1)
            ]
        );
    }

    #[test]
    fn old_row_snapshots_resume_whole_files_by_skipping_rows() {
        let old: Vec<(String, u64)> = vec![("x.csv".into(), 5)];
        let bytes = weir_state::encode(&old).unwrap();
        let mut s = Splits::new(layout(0, 1, 4, false));
        assert!(s.restore(vec![decode(&bytes).unwrap()]));
        s.discover(vec![listed("x.csv", 100, 1), listed("y.csv", 10, 1)]);
        let x = s.next().unwrap();
        assert_eq!((x.start, x.end, x.resume), (0, 100, Progress::SkipRows(5)));
        s.advance("x.csv", 0, Progress::Done);
        // y.csv is new: split at 4 bytes.
        assert_eq!(s.next().unwrap().end, 4);
    }

    #[test]
    fn a_monitored_source_reads_each_new_file_once_and_forgets_old_ones() {
        let mut s = Splits::new(layout(0, 1, 0, true));
        assert_eq!(s.discover(vec![listed("1", 5, 10_000)]), 1);
        assert_eq!(drain(std::slice::from_mut(&mut s)).len(), 1);
        // Seen again: not new. A newer file: new.
        assert_eq!(
            s.discover(vec![listed("1", 5, 10_000), listed("2", 5, 10_500)]),
            1
        );
        assert_eq!(drain(std::slice::from_mut(&mut s)).len(), 1);
        // "3" is far newer: "1" and "2" fall behind the horizon (3 - 1 s) and are forgotten
        // at the snapshot; a file older than the horizon that appears now is not read.
        s.discover(vec![listed("3", 5, 20_000), listed("0", 5, 500)]);
        assert_eq!(drain(std::slice::from_mut(&mut s)), vec![("3".into(), 0)]);
        let snap = s.snapshot().unwrap();
        assert_eq!(s.files().keys().collect::<Vec<_>>(), vec!["3"]);
        // After a restore, the forgotten files are still not read again.
        let mut r = Splits::new(layout(0, 1, 0, true));
        r.restore(vec![decode(&snap).unwrap()]);
        assert_eq!(
            r.discover(vec![listed("1", 5, 10_000), listed("3", 5, 20_000)]),
            0
        );
        assert_eq!(r.next(), None);
    }

    #[test]
    fn a_restore_below_the_horizon_reads_only_splits_under_way() {
        // Two subtasks; subtask 0 read its splits of f and forgot f, subtask 1 was still
        // reading its split when the checkpoint was taken.
        let lay = |i| Layout {
            forget_after_ms: 100,
            ..layout(i, 2, 10, true)
        };
        let mut subs: Vec<Splits> = (0..2).map(|i| Splits::new(lay(i))).collect();
        for s in subs.iter_mut() {
            s.discover(vec![listed("f", 40, 1_000)]);
        }
        let owner1: Vec<u32> = (0..4).filter(|k| subs[1].owner("f", *k) == 1).collect();
        assert_eq!(owner1.len(), 2);
        // Subtask 0 reads all of its splits; subtask 1 is part-way into its first.
        drain(&mut subs[..1]);
        let sp = subs[1].next().unwrap();
        subs[1].advance(
            "f",
            sp.index,
            Progress::At {
                offset: sp.start + 3,
                rows: 1,
            },
        );
        // A much newer file moves the horizon past f.
        for s in subs.iter_mut() {
            s.discover(vec![listed("f", 40, 1_000), listed("g", 1, 5_000)]);
        }
        let snaps: Vec<Vec<u8>> = subs.iter_mut().map(|s| s.snapshot().unwrap()).collect();
        let mut r = Splits::new(Layout {
            forget_after_ms: 100,
            ..layout(0, 1, 10, true)
        });
        r.restore(snaps.iter().map(|b| decode(b).unwrap()).collect());
        r.discover(vec![]);
        let mut got = Vec::new();
        while let Some(sp) = r.next() {
            got.push((sp.file.clone(), sp.index, sp.resume));
            r.advance(&sp.file, sp.index, Progress::Done);
        }
        // f: only subtask 1's split under way (from its offset) and its untouched second
        // split (recorded as queued at its start); g: whatever was not read yet.
        let f: Vec<_> = got.iter().filter(|(p, _, _)| p == "f").collect();
        assert_eq!(f.len(), 2, "{got:?}");
        assert_eq!(
            f[0].2,
            Progress::At {
                offset: sp.start + 3,
                rows: 1
            }
        );
    }

    #[test]
    fn ownership_by_hash_does_not_depend_on_other_files() {
        let s = Splits::new(layout(0, 4, 0, true));
        let before = s.owner("x/file-17.csv", 0);
        let mut t = Splits::new(layout(0, 4, 0, true));
        t.discover(vec![listed("a", 1, 0), listed("x/file-17.csv", 1, 0)]);
        assert_eq!(t.owner("x/file-17.csv", 0), before);
    }
}
