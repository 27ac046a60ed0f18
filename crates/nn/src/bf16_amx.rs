//! The AMX kernel: 32×32 (or 16×32 at the last rows) output blocks in four tile registers,
//! `tdpbf16ps` over 32-deep slices of the packed operands. Stable Rust has no AMX intrinsics,
//! but `asm!` assembles the instructions; the CPU support is checked at run time.

use std::ops::Range;

use super::{ALayout, OutPtr, PackedA, PackedB, NR};

/// Whether the CPU, the operating system and Linux's per-process permission allow AMX-BF16.
#[allow(unused_unsafe)]
pub(super) fn request() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // SAFETY: CPUID leaves 0, 1 and 7 exist on every x86_64 CPU that reports them in leaf 0.
        let max_leaf = unsafe { __cpuid(0) }.eax;
        if max_leaf < 7 {
            return false;
        }
        let osxsave = unsafe { __cpuid(1) }.ecx & (1 << 27) != 0;
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
        if !(osxsave && amx_bf16 && amx_tile) {
            return false;
        }
        // SAFETY: XGETBV is available when CPUID reports OSXSAVE.
        let xcr0 = unsafe { xgetbv0() };
        if xcr0 & (0b11 << 17) != 0b11 << 17 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_ulong = 18;
        // SAFETY: a plain system call with integer arguments.
        let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) };
        rc == 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    std::arch::x86_64::_xgetbv(0)
}

/// The kernel on a product with edges in every dimension, against the f64 reference: a kernel
/// that disagrees is never used.
pub(super) fn self_test() -> bool {
    let (m, n, k) = (40, 45, 100);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
    let mut got = vec![0f32; m * n];
    let mut want = vec![0f32; m * n];
    let (sa, sb) = (super::Strided { data: &a, rs: k, cs: 1 }, super::Strided { data: &b, rs: n, cs: 1 });
    super::gemm_unchecked(super::Bf16Kernel::Amx, (m, n, k), &mut got, false, sa, sb);
    super::gemm_reference((m, n, k), &mut want, false, sa, sb);
    let ok = got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-4 * (1.0 + w.abs()));
    if !ok {
        tracing::warn!("the AMX kernel disagrees with its reference on this CPU: bf16 uses AVX512-BF16 or fp32");
    }
    ok
}

/// Tile configuration (palette 1): tmm0–3 accumulators, tmm4–5 left slices, tmm6–7 right
/// slices, each 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// # Safety
/// AMX must be available and granted; operands padded as packed (rows to 16, depth to 32,
/// columns to 32); `rows` starts at a multiple of 16.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn block(
    pa: &PackedA,
    pb: &PackedB,
    rows: Range<usize>,
    panels: Range<usize>,
    n: usize,
    out: OutPtr,
) {
    use std::arch::asm;
    let mut cfg = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], colsb: [0; 16], rows: [0; 16] };
    for t in 0..8 {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    // Four 16×16 fp32 tiles stored after each block, then added to the output.
    let mut tmp = [0f32; 4 * 256];
    assert!(pa.layout == ALayout::RowMajor, "AMX tiles load row-major rows");
    let padded_rows = pa.data.len() / pa.kp;
    let lda = (pa.kp * 2) as isize;
    let ldb = (2 * NR * 2) as isize;
    let kblocks = pa.kp / 32;
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack, readonly));
    }
    for q in panels {
        let panel = unsafe { pb.data.as_ptr().add(q * pb.kp * NR) } as *const u8;
        let mut r0 = rows.start;
        while r0 < rows.end {
            let two = r0 + 32 <= padded_rows && r0 + 16 < rows.end;
            let a0 = unsafe { pa.data.as_ptr().add(r0 * pa.kp) } as *const u8;
            let a1 = if two { unsafe { a0.offset(16 * lda) } } else { a0 };
            // SAFETY: every tile load reads 16 rows × 64 bytes inside the padded operands: A rows
            // r0..r0+16 (and r0+16..r0+32 when `two`), B pairs 16·kb..16·kb+16 of the panel.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a0} + {lda}*1]",
                    "tileloadd tmm6, [{b0} + {ldb}*1]",
                    "tileloadd tmm7, [{b1} + {ldb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "test {two}, {two}",
                    "jz 3f",
                    "tileloadd tmm5, [{a1} + {lda}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "3:",
                    "add {a0}, 64",
                    "add {a1}, 64",
                    "add {b0}, {bstep}",
                    "add {b1}, {bstep}",
                    "dec {cnt}",
                    "jnz 2b",
                    "mov {t}, 64",
                    "tilestored [{c} + {t}*1], tmm0",
                    "add {c}, 1024",
                    "tilestored [{c} + {t}*1], tmm1",
                    "add {c}, 1024",
                    "tilestored [{c} + {t}*1], tmm2",
                    "add {c}, 1024",
                    "tilestored [{c} + {t}*1], tmm3",
                    a0 = inout(reg) a0 => _,
                    a1 = inout(reg) a1 => _,
                    b0 = inout(reg) panel => _,
                    b1 = inout(reg) panel.add(64) => _,
                    lda = in(reg) lda,
                    ldb = in(reg) ldb,
                    bstep = in(reg) 16 * ldb,
                    two = in(reg) two as usize,
                    cnt = inout(reg) kblocks => _,
                    c = inout(reg) tmp.as_mut_ptr() => _,
                    t = out(reg) _,
                    options(nostack),
                );
            }
            let valid_cols = NR.min(n - q * NR);
            for half in 0..if two { 2 } else { 1 } {
                for r in 0..16.min(rows.end.saturating_sub(r0 + 16 * half)) {
                    let row = r0 + 16 * half + r;
                    for j in 0..valid_cols {
                        let tile = 2 * half + j / 16;
                        // SAFETY: row < m and column < n of the output, owned by this task.
                        unsafe { *out.0.add(row * n + q * NR + j) += tmp[tile * 256 + r * 16 + j % 16] };
                    }
                }
            }
            r0 += if two { 32 } else { 16 };
        }
    }
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn block(_: &PackedA, _: &PackedB, _: Range<usize>, _: Range<usize>, _: usize, _: OutPtr) {
    unreachable!("AMX is never available off x86_64")
}
