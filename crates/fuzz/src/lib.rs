//! A small mutation fuzzer that runs on stable Rust inside `cargo test`: each target starts from
//! seeds (small valid files), mutates them with a seeded generator (bit flips, interesting
//! integers over length fields, insertions, deletions, duplications, splices, truncations) and
//! feeds the result to the parser. A panic is a failure, reported with the input saved for
//! reproduction; allocations beyond [`ALLOCATION_LIMIT`] abort the test process (see
//! [`GuardedAllocator`]), so a parser that trusts a count it read fails loudly too.
//!
//! Inputs that ever crashed are kept under `crates/fuzz/regressions/<target>/` and run first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glace_rng::SplitMix64;

/// Largest single allocation a parser may ask for while fuzzed.
pub const ALLOCATION_LIMIT: usize = 1 << 30;

/// The system allocator, refusing single allocations over [`ALLOCATION_LIMIT`] (the process then
/// aborts with Rust's "memory allocation failed" message). Install it in a fuzz test binary with
/// `#[global_allocator]`.
pub struct GuardedAllocator;

// SAFETY: forwards to the system allocator; refusing an allocation by returning null is allowed.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
    u64::MAX - 1,
    1 << 40,
];

/// One mutation of `input` (with `seeds` for splicing).
pub fn mutate(input: &[u8], seeds: &[Vec<u8>], rng: &mut SplitMix64) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let x = INTERESTING[rng.below(INTERESTING.len())] as u32;
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            3 if len >= 8 => {
                let i = rng.below(len - 7);
                let x = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = if rng.below(2) == 0 { x.to_le_bytes() } else { x.to_be_bytes() };
                v[i..i + 8].copy_from_slice(&bytes);
            }
            4 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(i..i, bytes);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            6 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let copy = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, copy);
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() && len > 0 {
                    let cut = rng.below(len);
                    let from = rng.below(other.len());
                    v.truncate(cut);
                    v.extend_from_slice(&other[from..]);
                }
            }
            8 if len > 0 => v.truncate(rng.below(len)),
            9 if len > 0 => {
                // A decimal number where text parsers read counts.
                let i = rng.below(len);
                let n = ["0", "-1", "4294967296", "18446744073709551615", "1e300", "nan", "inf", "999999999999"];
                let s = n[rng.below(n.len())].as_bytes();
                v.splice(i..i, s.iter().copied());
            }
            _ => {}
        }
    }
    v
}

/// What a fuzz run did.
#[derive(Debug)]
pub struct Report {
    /// The target.
    pub target: String,
    /// Inputs run.
    pub runs: u64,
    /// Inputs the parser accepted.
    pub accepted: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The folder of kept crash inputs of `target`.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target)
}

/// Fuzzes `parse` (true when it accepted the input) from `seeds` for `iterations` inputs or
/// until `time` passes, after every kept regression input. Panics, naming the saved input, if
/// the parser panicked.
pub fn run(
    target: &str,
    seeds: &[Vec<u8>],
    iterations: u64,
    time: Duration,
    seed: u64,
    parse: &mut dyn FnMut(&[u8]) -> bool,
) -> Report {
    let start = Instant::now();
    let mut report = Report { target: target.into(), runs: 0, accepted: 0, elapsed: Duration::ZERO };
    let mut check = |input: &[u8], report: &mut Report| {
        report.runs += 1;
        match catch_unwind(AssertUnwindSafe(|| parse(input))) {
            Ok(ok) => report.accepted += u64::from(ok),
            Err(_) => {
                let dir = regressions_dir(target);
                let _ = std::fs::create_dir_all(&dir);
                let name =
                    format!("crash-{:016x}.bin", glace_rng::hash(&input.iter().map(|&b| b as u64).collect::<Vec<_>>()));
                let _ = std::fs::write(dir.join(&name), input);
                drop(std::panic::take_hook()); // the default hook again, so the failure shows
                panic!("{target}: the parser panicked on an input saved as {}", dir.join(name).display());
            }
        }
    };
    if let Ok(entries) = std::fs::read_dir(regressions_dir(target)) {
        let mut kept: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        kept.sort();
        for p in kept {
            if let Ok(bytes) = std::fs::read(&p) {
                check(&bytes, &mut report);
            }
        }
    }
    for s in seeds {
        check(s, &mut report);
    }
    let mut rng = SplitMix64::from_state(seed);
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    let mut i = 0u64;
    while i < iterations && start.elapsed() < time {
        let base = &pool[rng.below(pool.len())];
        let input = mutate(base, seeds, &mut rng);
        // Mutants the parser accepted are kept as further starting points (bounded).
        let before = report.accepted;
        check(&input, &mut report);
        if report.accepted > before && pool.len() < 256 && input.len() < 1 << 20 {
            pool.push(input);
        }
        i += 1;
    }
    report.elapsed = start.elapsed();
    report
}
