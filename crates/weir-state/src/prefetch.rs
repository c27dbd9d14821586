//! The one `unsafe` of the workspace: a cache prefetch hint (STYLE.md: unsafe only where a
//! measured hot path needs it, in one small module). Measured: the keyed count with 100 000
//! keys, see `docs/benchmarks.md`.

/// Asks the CPU to start loading the cache line of `value`. A hint: it reads nothing into
/// the program, so it cannot change behaviour, only timing.
#[inline(always)]
#[allow(unsafe_code)]
pub fn read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a prefetch never faults
    // and never dereferences in the program's semantics, and the pointer comes from a live
    // reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Like [`read`], for a value that may straddle two cache lines (a hash-table slot of up to
/// 64 bytes in an allocation not aligned to 64 does): starts loading both.
#[inline(always)]
pub fn read_all<T>(value: &T) {
    read(value);
    let last = (value as *const T)
        .cast::<u8>()
        .wrapping_add(std::mem::size_of::<T>().saturating_sub(1));
    if (last as usize) / 64 != (value as *const T as usize) / 64 {
        read_ptr(last);
    }
}

/// [`read`] of the cache line holding the byte at `ptr` (never dereferenced).
#[inline(always)]
#[allow(unsafe_code)]
fn read_ptr(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `read`: a prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
