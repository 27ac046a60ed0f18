//! How the process's allocator treats the networks' per-step buffers.

/// Keeps freed memory in the process (glibc: blocks up to 32 MB from the heap, the heap trimmed
/// only beyond 256 MB free) instead of handing every freed block above 128 KB back to the kernel.
/// Each training step allocates its activations and gradients afresh; with glibc's defaults they
/// came back as new pages the kernel had to fault in and zero, step after step (measured in
/// docs/benchmarks.md). Process-wide, so only programs call it (the command line, the Python
/// module), first thing; a no-op elsewhere than glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of glibc's allocator parameters; valid at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
