//! The allocator settings the binaries run with (and the Kafka baseline in
//! `benches/raw_kafka.rs`, which compiles this file in, so both measure
//! under the same allocator). Process-wide, so never library code.

/// Keeps freed heap memory in the process instead of giving it back to the
/// kernel at once (glibc only; elsewhere a no-op).
///
/// Replay allocates and frees a container per event, and librdkafka a fetch
/// buffer of megabytes per fetch. glibc's defaults return the top of a heap
/// once 128 KiB of it are free and serve large blocks with `mmap`, so every
/// such cycle paid `mprotect`/`munmap` and page faults (about 10% of a
/// replay worker's samples under `perf`). With the thresholds below,
/// `capture_recv` of a 400 MB topic on tansu took 0.47 s instead of 0.52
/// (medians of 7, interleaved runs); peak RSS stays bounded by
/// what the process holds at once plus `TRIM_THRESHOLD` per malloc arena.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Free memory a heap keeps before trimming.
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        /// Blocks up to this size come from the heap, not `mmap` (glibc's maximum).
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters; called before
        // the program starts its threads.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
