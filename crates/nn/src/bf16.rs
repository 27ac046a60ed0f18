//! bf16 matrix products: operands rounded to bf16 (round to nearest even), products accumulated
//! and written in fp32, as the reference's mixed-precision autocast does on a GPU.
//!
//! Two kernels, chosen at run time and never assumed: AVX512-BF16 (`vdpbf16ps`) and AMX
//! (`tdpbf16ps` through `asm!`, after CPUID, XCR0 and the kernel's permission request). Both read
//! the same packed operands: the left matrix row-major in bf16 with rows padded to 16 and the
//! depth to 32, the right one in panels of 32 columns with pairs of depth interleaved (the VNNI
//! layout both instructions consume).

use std::sync::OnceLock;

use rayon::prelude::*;

/// A bf16 matrix kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bf16Kernel {
    /// AVX512-BF16 dot products (`vdpbf16ps`).
    Avx512,
    /// AMX tiles (`tdpbf16ps`).
    Amx,
}

impl Bf16Kernel {
    /// Short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Avx512 => "avx512-bf16",
            Bf16Kernel::Amx => "amx-bf16",
        }
    }

    /// Whether this CPU (and its operating system) can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::Avx512 => avx512_bf16_available(),
            Bf16Kernel::Amx => amx_available(),
        }
    }
}

/// Whether the CPU has AVX512-BF16 (and AVX512F).
pub fn avx512_bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AMX-BF16 can be used: CPUID says the CPU has AMX-TILE and AMX-BF16, XCR0 says the
/// operating system saves the tile state, and Linux granted this process the tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM)`). Checked once; a failed self-test also turns it off.
pub fn amx_available() -> bool {
    static AMX: OnceLock<bool> = OnceLock::new();
    *AMX.get_or_init(|| {
        let ok = amx::request();
        ok && amx::self_test()
    })
}

/// The CPU's vendor string from CPUID leaf 0 (`GenuineIntel`, `AuthenticAMD`, …).
pub fn cpu_vendor() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID leaf 0 exists on every x86_64 CPU (safe to call from Rust 1.94 on).
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        let bytes: Vec<u8> = [r.ebx, r.edx, r.ecx].iter().flat_map(|v| v.to_le_bytes()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::new()
    }
}

/// The kernel that makes bf16 faster than fp32 on this CPU, if any: AMX where it works; on AMD,
/// AVX512-BF16 (two bf16 products per fp32 lane at the fp32 rate there). On Intel CPUs without
/// AMX `vdpbf16ps` runs at half the fp32 rate, so there is no fast path.
pub fn fast_kernel() -> Option<Bf16Kernel> {
    if amx_available() {
        Some(Bf16Kernel::Amx)
    } else if avx512_bf16_available() && cpu_vendor() == "AuthenticAMD" {
        Some(Bf16Kernel::Avx512)
    } else {
        None
    }
}

/// The best kernel this CPU has, fast or not (for an explicit bf16 request).
pub fn best_kernel() -> Option<Bf16Kernel> {
    if amx_available() {
        Some(Bf16Kernel::Amx)
    } else if avx512_bf16_available() {
        Some(Bf16Kernel::Avx512)
    } else {
        None
    }
}

/// fp32 → bf16 as `vcvtneps2bf16` does it: round to nearest even, NaN stays (quiet) NaN,
/// denormals become zero of their sign.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7F80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 → fp32 (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Rows of the packed left operand are padded to this (an AMX tile's rows; two AVX512 micro-tiles).
const ROW_PAD: usize = 16;
/// Depth is padded to this (an AMX tile row: 32 bf16 = 64 bytes).
const K_PAD: usize = 32;
/// Columns per panel of the packed right operand (two zmm of fp32 accumulators per row).
const NR: usize = 32;

/// The left operand `A[m×k]` in bf16 with zero padding (rows to 16, depth to 32), laid out for
/// its kernel.
struct PackedA {
    data: Vec<u16>,
    kp: usize,
    layout: ALayout,
}

/// How [`PackedA`] holds the rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ALayout {
    /// Row-major `rows × kp` (an AMX tile loads 16 rows of 32 depths).
    RowMajor,
    /// Blocks of 16 rows, each `pair of depth, row, 2`: the 16 pairs a micro-kernel broadcasts
    /// at one depth are contiguous, and a transposed source packs with whole-vector stores.
    PairBlocks,
}

/// The right operand `B[k×n]` in panels of [`NR`] columns: `panel, pair of depth, column, 2`.
struct PackedB {
    data: Vec<u16>,
    kp: usize,
    panels: usize,
}

/// `dst[i] = bf16(src[i])`, sixteen at a time where the CPU converts in one instruction.
fn convert(src: &[f32], dst: &mut [u16]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512_bf16_available() {
        // SAFETY: AVX512-BF16 checked; the helper stays within both slices.
        done = unsafe { avx512::convert(src, dst) };
    }
    for (d, s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = to_bf16(*s);
    }
}

/// `pairs[j] = bf16(r0[j]) | bf16(r1[j]) << 16` (r1 absent: 0), the VNNI pair of two depths.
fn interleave(r0: &[f32], r1: Option<&[f32]>, pairs: &mut [u32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(r1)) = (avx512_bf16_available(), r1) {
        // SAFETY: AVX512-BF16 checked; the helper stays within the slices.
        done = unsafe { avx512::interleave(r0, r1, pairs) };
    }
    for j in done..pairs.len() {
        let hi = r1.map_or(0, |r| to_bf16(r[j]) as u32);
        pairs[j] = to_bf16(r0[j]) as u32 | hi << 16;
    }
}

/// Row `i` of `a` (k elements) into `dst` in bf16.
fn source_row(a: Strided, i: usize, k: usize, dst: &mut [u16]) {
    if a.cs == 1 {
        convert(&a.data[i * a.rs..i * a.rs + k], dst);
    } else {
        for (t, d) in dst[..k].iter_mut().enumerate() {
            *d = to_bf16(a.data[i * a.rs + t * a.cs]);
        }
    }
}

fn pack_a(a: Strided, m: usize, k: usize, layout: ALayout) -> PackedA {
    let kp = k.next_multiple_of(K_PAD);
    let rows = m.next_multiple_of(ROW_PAD);
    let mut data = vec![0u16; rows * kp];
    // A transposed in memory (dYᵀ of a weight gradient): the source rows are A's columns.
    let transposed = a.rs == 1 && a.cs != 1;
    // Source row of depth t (transposed A only): A's column t, every row.
    let depth = |t: usize| (t < k).then(|| &a.data[t * a.cs..t * a.cs + m]);
    if transposed && layout == ALayout::PairBlocks {
        // Two whole source rows (two depths of every A row) at a time, read in order, their pairs
        // copied into every block. Tasks own disjoint depths, so they write disjoint parts of
        // every block.
        let out = SharedU16(data.as_mut_ptr());
        let pairs_total = k.div_ceil(2);
        (0..pairs_total.div_ceil(32)).into_par_iter().for_each(|task| {
            let mut pairs = vec![0u32; m];
            for p in task * 32..(task * 32 + 32).min(pairs_total) {
                interleave(depth(2 * p).expect("p < k/2"), depth(2 * p + 1), &mut pairs);
                for (blk, block) in pairs.chunks(ROW_PAD).enumerate() {
                    let at = blk * ROW_PAD * kp + 2 * p * ROW_PAD;
                    // SAFETY: pair p of block blk lies inside `data` (rows padded to 16, depth
                    // to 32), and only this task writes pair p.
                    unsafe {
                        std::ptr::copy_nonoverlapping(block.as_ptr() as *const u16, out.get().add(at), 2 * block.len())
                    };
                }
            }
        });
        return PackedA { data, kp, layout };
    }
    data.par_chunks_mut(kp * ROW_PAD).enumerate().for_each(|(blk, chunk)| {
        let i0 = blk * ROW_PAD;
        let valid = ROW_PAD.min(m - i0);
        match layout {
            ALayout::RowMajor if transposed => {
                // The block's rows are contiguous at each depth: walk the depth outside, two
                // depths at a time.
                let mut pairs = [0u32; ROW_PAD];
                for t in (0..k).step_by(2) {
                    let r1 = depth(t + 1).map(|r| &r[i0..i0 + valid]);
                    interleave(&depth(t).expect("t < k")[i0..i0 + valid], r1, &mut pairs[..valid]);
                    for (r, p) in pairs[..valid].iter().enumerate() {
                        chunk[r * kp + t] = *p as u16;
                        chunk[r * kp + t + 1] = (*p >> 16) as u16;
                    }
                }
            }
            ALayout::RowMajor => {
                for (r, dst) in chunk.chunks_exact_mut(kp).take(valid).enumerate() {
                    source_row(a, i0 + r, k, dst);
                }
            }
            ALayout::PairBlocks => {
                let mut row = vec![0u16; kp];
                for r in 0..valid {
                    source_row(a, i0 + r, k, &mut row);
                    for p in 0..kp / 2 {
                        chunk[2 * (p * ROW_PAD + r)..][..2].copy_from_slice(&row[2 * p..2 * p + 2]);
                    }
                }
            }
        }
    });
    PackedA { data, kp, layout }
}

fn pack_b(b: Strided, k: usize, n: usize) -> PackedB {
    let (b, rs, cs) = (b.data, b.rs, b.cs);
    let kp = k.next_multiple_of(K_PAD);
    let panels = n.div_ceil(NR);
    let panel_len = kp * NR;
    let mut data = vec![0u16; panels * panel_len];
    data.par_chunks_mut(panel_len).enumerate().for_each(|(q, panel)| {
        let cols = NR.min(n - q * NR);
        let c0 = q * NR;
        if cs == 1 {
            // B row-major (the activations of a weight gradient): a row's panel columns are
            // contiguous, so walk the depth outside, two rows into one pair-row at a time.
            let mut t = 0;
            while t < k {
                let r0 = &b[t * rs + c0..t * rs + c0 + cols];
                let r1 = (t + 1 < k).then(|| &b[(t + 1) * rs + c0..(t + 1) * rs + c0 + cols]);
                let dst = &mut panel[t * NR..t * NR + 2 * cols];
                let mut pairs = [0u32; NR];
                interleave(r0, r1, &mut pairs[..cols]);
                for (j, p) in pairs[..cols].iter().enumerate() {
                    dst[2 * j] = *p as u16;
                    dst[2 * j + 1] = (*p >> 16) as u16;
                }
                t += 2;
            }
        } else {
            // Bᵀ row-major (a layer's weight): each column is contiguous over the depth.
            for j in 0..cols {
                for t in 0..k {
                    panel[(t / 2) * 2 * NR + 2 * j + (t & 1)] = to_bf16(b[t * rs + (c0 + j) * cs]);
                }
            }
        }
    });
    PackedB { data, kp, panels }
}

/// The packed left operand shared by packing tasks that write disjoint depths.
#[derive(Clone, Copy)]
struct SharedU16(*mut u16);
// SAFETY: the tasks write disjoint elements.
unsafe impl Send for SharedU16 {}
unsafe impl Sync for SharedU16 {}

impl SharedU16 {
    fn get(self) -> *mut u16 {
        self.0
    }
}

/// Raw output pointer shared by tasks that write disjoint blocks.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint set of rows × panels of the output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// A strided matrix operand: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// `out[m×n] (+)= A[m×k] · B[k×n]` with bf16 operands (rounded from the fp32 inputs) and fp32
/// accumulation. Panics when `kernel` is not [`Bf16Kernel::available`] here.
pub fn gemm(
    kernel: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
    accumulate: bool,
    a: Strided,
    b: Strided,
) {
    assert!(kernel.available(), "the {} kernel is not available on this CPU", kernel.name());
    gemm_unchecked(kernel, (m, n, k), out, accumulate, a, b);
}

/// [`gemm`] without the availability check (for the AMX self-test that decides availability).
fn gemm_unchecked(
    kernel: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
    accumulate: bool,
    a: Strided,
    b: Strided,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(out.len() >= m * n, "bf16 gemm: output size");
    if !accumulate {
        out[..m * n].fill(0.0);
    }
    if k == 0 {
        return;
    }
    assert!(((m - 1) * a.rs + (k - 1) * a.cs) < a.data.len(), "bf16 gemm: lhs bounds");
    assert!(((k - 1) * b.rs + (n - 1) * b.cs) < b.data.len(), "bf16 gemm: rhs bounds");
    let layout = if kernel == Bf16Kernel::Amx { ALayout::RowMajor } else { ALayout::PairBlocks };
    let pa = pack_a(a, m, k, layout);
    let pb = pack_b(b, k, n);
    debug_assert_eq!(pa.kp, pb.kp);
    // Tasks: blocks of 64 rows × 8 panels (256 columns).
    const MC: usize = 64;
    const PC: usize = 8;
    let row_blocks = m.div_ceil(MC);
    let col_blocks = pb.panels.div_ceil(PC);
    let ptr = OutPtr(out.as_mut_ptr());
    let run = |task: usize| {
        let (rb, cb) = (task / col_blocks, task % col_blocks);
        let rows = rb * MC..((rb + 1) * MC).min(m);
        let panels = cb * PC..((cb + 1) * PC).min(pb.panels);
        // SAFETY: the packed operands are padded to whole tiles (rows to 16, depth to 32, columns
        // to 32); `block` writes only rows < m and columns < n of this task's block.
        unsafe {
            match kernel {
                Bf16Kernel::Avx512 => avx512::block(&pa, &pb, rows, panels, n, ptr),
                Bf16Kernel::Amx => amx::block(&pa, &pb, rows, panels, n, ptr),
            }
        }
    };
    let tasks = row_blocks * col_blocks;
    if 2 * m * n * k > 1 << 22 && tasks > 1 {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
}

/// The product the kernels compute, in f64 over the bf16-rounded operands (for tests).
pub fn gemm_reference((m, n, k): (usize, usize, usize), out: &mut [f32], accumulate: bool, a: Strided, b: Strided) {
    let r = |x: f32| from_bf16(to_bf16(x)) as f64;
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|t| r(a.data[i * a.rs + t * a.cs]) * r(b.data[t * b.rs + j * b.cs])).sum();
            let o = &mut out[i * n + j];
            *o = if accumulate { *o + s as f32 } else { s as f32 };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{ALayout, OutPtr, PackedA, PackedB, NR, ROW_PAD};

    /// Rows per micro-tile: 8 rows × 32 columns = 16 accumulators.
    const MR: usize = 8;
    /// Depth pairs per pass over a panel (keeps the panel's slice in L1/L2).
    const KC: usize = 256;

    /// Converts the leading multiple of 16 of `src` into `dst`; returns how many.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert(src: &[f32], dst: &mut [u16]) -> usize {
        let n = src.len().min(dst.len()) / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 ≤ n ≤ both lengths.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(i));
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, h);
            }
        }
        n
    }

    /// The leading multiple of 16 of `pairs` from `r0` and `r1` (see `super::interleave`).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn interleave(r0: &[f32], r1: &[f32], pairs: &mut [u32]) -> usize {
        let n = pairs.len().min(r0.len()).min(r1.len()) / 16 * 16;
        for j in (0..n).step_by(16) {
            // SAFETY: j + 16 ≤ n ≤ every length.
            unsafe {
                let lo: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(r0.as_ptr().add(j))));
                let hi: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(r1.as_ptr().add(j))));
                // Zero-extend each 16-bit value to 32 bits, shift the second row's up, combine.
                let v = _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
                _mm512_storeu_si512(pairs.as_mut_ptr().add(j) as *mut _, v);
            }
        }
        n
    }

    /// # Safety
    /// AVX512-BF16 must be available; operands padded as packed; `rows`, `panels` within them.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(
        pa: &PackedA,
        pb: &PackedB,
        rows: Range<usize>,
        panels: Range<usize>,
        n: usize,
        out: OutPtr,
    ) {
        let pairs = pa.kp / 2;
        let mut p0 = 0;
        while p0 < pairs {
            let pc = KC.min(pairs - p0);
            for q in panels.clone() {
                let bp = unsafe { pb.data.as_ptr().add(q * pb.kp * NR + p0 * 2 * NR) };
                let mut r0 = rows.start;
                while r0 < rows.end {
                    // (row stride, pair stride) of A in u16 pairs, and the first pair of the tile.
                    let (rstride, pstride, first) = match pa.layout {
                        ALayout::RowMajor => (pa.kp / 2, 1, r0 * pa.kp / 2 + p0),
                        ALayout::PairBlocks => {
                            (1, ROW_PAD, (r0 / ROW_PAD) * ROW_PAD * pa.kp / 2 + p0 * ROW_PAD + r0 % ROW_PAD)
                        }
                    };
                    let ap = unsafe { (pa.data.as_ptr() as *const u32).add(first) };
                    let valid_rows = MR.min(rows.end - r0);
                    let valid_cols = NR.min(n - q * NR);
                    // SAFETY: A holds rows r0..r0+8 (padded to 16) and pairs p0..p0+pc; the panel
                    // holds pairs p0..p0+pc × 32 columns; stores are masked to the valid part.
                    unsafe {
                        micro(pc, ap, (rstride, pstride), bp, out.0.add(r0 * n + q * NR), n, valid_rows, valid_cols)
                    };
                    r0 += MR;
                }
            }
            p0 += pc;
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn micro(
        pairs: usize,
        a: *const u32,
        (rstride, pstride): (usize, usize),
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        valid_rows: usize,
        valid_cols: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); 2 * MR];
        for p in 0..pairs {
            // SAFETY (whole block): in bounds by the caller's padding.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * 2 * NR) as *const _));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * 2 * NR + NR) as *const _));
                for r in 0..MR {
                    let pair = a.add(r * rstride + p * pstride).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                    acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], av, b0);
                    acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], av, b1);
                }
            }
        }
        let m0: __mmask16 = if valid_cols >= 16 { 0xFFFF } else { ((1u32 << valid_cols) - 1) as u16 };
        let m1: __mmask16 = if valid_cols >= 32 {
            0xFFFF
        } else if valid_cols > 16 {
            ((1u32 << (valid_cols - 16)) - 1) as u16
        } else {
            0
        };
        for r in 0..valid_rows {
            // SAFETY: row r < valid rows of the output, columns masked to the valid ones.
            unsafe {
                let row = c.add(r * ldc);
                let old0 = _mm512_maskz_loadu_ps(m0, row);
                _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(old0, acc[2 * r]));
                if m1 != 0 {
                    let old1 = _mm512_maskz_loadu_ps(m1, row.add(16));
                    _mm512_mask_storeu_ps(row.add(16), m1, _mm512_add_ps(old1, acc[2 * r + 1]));
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::{OutPtr, PackedA, PackedB};
    pub(super) unsafe fn block(
        _: &PackedA,
        _: &PackedB,
        _: std::ops::Range<usize>,
        _: std::ops::Range<usize>,
        _: usize,
        _: OutPtr,
    ) {
        unreachable!("AVX512-BF16 is never available off x86_64")
    }
}

#[path = "bf16_amx.rs"]
mod amx;

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = glace_rng::SplitMix64::from_state(seed);
        (0..len).map(|_| (r.f64() * 2.0 - 1.0) as f32).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0); // a tie rounds to even
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(-0.0)).to_bits(), (-0.0f32).to_bits());
        assert_eq!(to_bf16(1e-40), 0);
        assert_eq!(to_bf16(-1e-40), 0x8000);
    }

    /// Both layouts of the left operand, from every kind of strides, hold bf16(A) where the
    /// kernels look for it (the AMX one cannot run here, so its packing is checked on its own).
    #[test]
    fn packed_operands_hold_the_rounded_elements() {
        for &(m, k) in &[(1, 1), (17, 33), (40, 100), (16, 64)] {
            let data = random(m * k, (m * k) as u64);
            for (rs, cs) in [(k, 1), (1, m)] {
                let a = Strided { data: &data, rs, cs };
                let kp = k.next_multiple_of(K_PAD);
                let row_major = pack_a(a, m, k, ALayout::RowMajor);
                let blocks = pack_a(a, m, k, ALayout::PairBlocks);
                for i in 0..m.next_multiple_of(ROW_PAD) {
                    for t in 0..kp {
                        let want = if i < m && t < k { to_bf16(data[i * rs + t * cs]) } else { 0 };
                        assert_eq!(row_major.data[i * kp + t], want, "row-major {m}×{k} ({rs},{cs}) at {i},{t}");
                        let at = (i / ROW_PAD) * ROW_PAD * kp + 2 * ((t / 2) * ROW_PAD + i % ROW_PAD) + t % 2;
                        assert_eq!(blocks.data[at], want, "pair blocks {m}×{k} ({rs},{cs}) at {i},{t}");
                    }
                }
            }
            let b = random(k * m, 3);
            for (rs, cs) in [(m, 1), (1, k)] {
                let packed = pack_b(Strided { data: &b, rs, cs }, k, m);
                let kp = k.next_multiple_of(K_PAD);
                for j in 0..m.next_multiple_of(NR) {
                    for t in 0..kp {
                        let want = if j < m && t < k { to_bf16(b[t * rs + j * cs]) } else { 0 };
                        let at = (j / NR) * kp * NR + (t / 2) * 2 * NR + 2 * (j % NR) + t % 2;
                        assert_eq!(packed.data[at], want, "B {k}×{m} ({rs},{cs}) at {t},{j}");
                    }
                }
            }
        }
    }

    /// The vector conversions give the scalar rounding bit for bit (lengths with tails).
    #[test]
    fn vector_conversion_matches_scalar() {
        let mut src = random(77, 11);
        src[3] = f32::NAN;
        src[5] = 1e-40;
        src[7] = -f32::INFINITY;
        src[9] = 1.0 + 1.0 / 256.0;
        let mut dst = vec![0u16; 77];
        convert(&src, &mut dst);
        for (d, s) in dst.iter().zip(&src) {
            assert!(*d == to_bf16(*s) || (s.is_nan() && from_bf16(*d).is_nan()), "{s}: {d:#x} vs {:#x}", to_bf16(*s));
        }
        let r1 = random(77, 12);
        let mut pairs = vec![0u32; 77];
        interleave(&src, Some(&r1), &mut pairs);
        for j in 0..77 {
            let (lo, hi) = (pairs[j] as u16, (pairs[j] >> 16) as u16);
            assert!(lo == to_bf16(src[j]) || src[j].is_nan(), "lo {j}");
            assert_eq!(hi, to_bf16(r1[j]), "hi {j}");
        }
    }

    /// Every available kernel against the f64 product of the rounded operands, on the three
    /// shapes of a training step (plain, transposed left, transposed right), edges included.
    #[test]
    fn kernels_match_the_rounded_reference() {
        let kernels: Vec<Bf16Kernel> =
            [Bf16Kernel::Avx512, Bf16Kernel::Amx].into_iter().filter(|k| k.available()).collect();
        for k in [Bf16Kernel::Avx512, Bf16Kernel::Amx] {
            if !k.available() {
                println!("SKIPPED {}: this CPU lacks it (vendor {})", k.name(), cpu_vendor());
            }
        }
        let shapes = [(1, 1, 1), (7, 5, 3), (16, 32, 32), (17, 33, 31), (37, 70, 65), (130, 97, 300), (64, 257, 513)];
        for kernel in kernels {
            for (s, &(m, n, k)) in shapes.iter().enumerate() {
                let a = random(m * k, 2 * s as u64);
                let b = random(k * n, 2 * s as u64 + 1);
                // (row stride, column stride) of A and B: plain, Aᵀ stored, Bᵀ stored.
                let layouts = [((k, 1), (n, 1)), ((1, m), (n, 1)), ((k, 1), (1, k))];
                for (l, &((ars, acs), (brs, bcs))) in layouts.iter().enumerate() {
                    for accumulate in [false, true] {
                        let init = random(m * n, 99);
                        let mut got = init.clone();
                        let mut want = init.clone();
                        let (sa, sb) = (Strided { data: &a, rs: ars, cs: acs }, Strided { data: &b, rs: brs, cs: bcs });
                        gemm(kernel, (m, n, k), &mut got, accumulate, sa, sb);
                        gemm_reference((m, n, k), &mut want, accumulate, sa, sb);
                        let tol = 1e-5 * (k as f32).sqrt() * 4.0 + 1e-6;
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (g - w).abs() <= tol * (1.0 + w.abs()),
                                "{} {m}×{n}×{k} layout {l} acc {accumulate} at {i}: {g} vs {w}",
                                kernel.name()
                            );
                        }
                    }
                }
            }
        }
    }

    /// Against the fp32 product: the error is the rounding of the operands (relative ~2⁻⁸).
    #[test]
    fn kernels_are_close_to_fp32() {
        let Some(kernel) = best_kernel() else {
            println!("SKIPPED bf16 against fp32: no bf16 kernel on this CPU (vendor {})", cpu_vendor());
            return;
        };
        let (m, n, k) = (200, 150, 768);
        let a = random(m * k, 5);
        let b = random(n * k, 6);
        let mut got = vec![0f32; m * n];
        let mut want = vec![0f32; m * n];
        gemm(
            kernel,
            (m, n, k),
            &mut got,
            false,
            Strided { data: &a, rs: k, cs: 1 },
            Strided { data: &b, rs: 1, cs: k },
        );
        crate::linalg::matmul_wt(&a, m, k, &b, n, &mut want);
        let scale = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
        let err = (got.iter().zip(&want).map(|(g, w)| (g - w) * (g - w)).sum::<f32>() / want.len() as f32).sqrt();
        assert!(err / scale < 8e-3, "relative rms error {}", err / scale);
    }
}
