//! A poison-tolerant mutex lock, shared by the crates that keep state behind `std` mutexes.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, and takes the guard even if the mutex is poisoned (a thread panicked while
/// holding it).
///
/// Poison is tolerated because a panicking holder must not take the whole process down with
/// it: with `lock().unwrap()`, one task or request that panicked under a lock would make
/// every later caller panic too, and a job manager or task manager would stop serving all its
/// jobs. The data stays usable: the callers guard registries (jobs, tasks, task managers,
/// channels, watermark alignment groups), job views and small values, change them only
/// through whole standard-library operations (`insert`, `remove`, `retain`, `push`, an
/// assignment), and do no I/O and run no operator code while they hold the lock. A panic
/// there leaves at worst some of the holder's updates not made, never a half-written value.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
