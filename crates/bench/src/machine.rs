//! What machine a figure was measured on, and the peak it is compared with.

use std::time::Instant;

use glace_nn::bf16::Bf16Kernel;
use glace_nn::linalg::{Matmul, Precision};

/// The CPU's model name (`/proc/cpuinfo`), "unknown" where it cannot be read.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// What this CPU has and what `--precision auto` picks, for benchmark headers.
pub fn precision_header() -> String {
    let auto = Precision::Auto.resolve().map(|m| m.name()).unwrap_or_else(|e| e);
    format!(
        "CPU {} ({}), AVX512-BF16 {}, AMX-BF16 {}; --precision auto picks {auto}",
        cpu_model(),
        glace_nn::bf16::cpu_vendor(),
        if glace_nn::bf16::avx512_bf16_available() { "yes" } else { "no" },
        if glace_nn::bf16::amx_available() { "yes" } else { "no" },
    )
}

/// The matrix-product choices a side-by-side benchmark compares on this CPU: fp32 and every
/// bf16 kernel the CPU has.
pub fn matmul_choices() -> Vec<Matmul> {
    let mut v = vec![Matmul::Fp32];
    for k in [Bf16Kernel::Avx512, Bf16Kernel::Amx] {
        if k.available() {
            v.push(Matmul::Bf16(k));
        }
    }
    v
}

/// Peak GFLOP/s of one way of computing products: a large square GEMM on the same threads.
pub fn gemm_peak_gflops(mm: Matmul) -> f64 {
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    glace_nn::linalg::matmul_wt_with(mm, &a, n, n, &a, n, &mut c);
    let t = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        glace_nn::linalg::matmul_wt_with(mm, &a, n, n, &a, n, &mut c);
    }
    2.0 * (n * n * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// Threads the benchmarks' parallel work runs on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
