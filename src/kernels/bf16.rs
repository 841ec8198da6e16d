//! bf16 matrix products on the CPU, for `dtype: "bf16"` (`precision.rs`).
//!
//! C (m, n) = α · op(A) op(B) + β · C, with every operand value first rounded
//! to bfloat16 (the top half of an f32: sign, 8 exponent bits, 7 stored
//! mantissa bits; round to nearest, ties to even) and the products summed in
//! f32:
//!
//!   C_ij = α · Σ_p bf16(A_ip) · bf16(B_pj) + β · C_ij
//!
//! A product of two bf16 values is exact in f32 (8 + 8 significant bits fit
//! in 24), so the result differs from sgemm's only by the operands' rounding
//! (at most 2⁻⁸ relative, each) and the order of the f32 sums: the contract of
//! PyTorch's CPU autocast to bf16 for a matmul, except that C stays f32 here
//! (autocast rounds the output to bf16 as well).
//!
//! Kernel (CPUs with AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake and
//! Sapphire Rapids and later): `vdpbf16ps` takes 32 bf16 pairs and adds each
//! pair's two products into one of 16 f32 lanes, twice the multiply-adds of an
//! f32 FMA per instruction. The loops are Goto's (as in BLIS and OpenBLAS):
//!
//!   for each NC columns of C (j0):
//!     for each KC depths (p0):
//!       pack B (KC × NC) into strips of NR = 32 columns; per depth pair
//!         (p, p+1) and column j one u32 = bf16(B_p+1,j) << 16 | bf16(B_p,j)
//!       for each MC rows (i0):
//!         pack A (MC × KC) into strips of MR rows, the same pairs per row
//!         for each B strip, for each A strip: one MR × NR tile of C, held in
//!           2·MR zmm registers; per depth pair 2 loads of B, MR broadcasts
//!           of an A pair, 2·MR `vdpbf16ps`
//!
//! An odd depth gets a zero partner; rows and columns past the edges are
//! packed as zeros and left out when C is stored. The vector conversions and
//! `vdpbf16ps` read subnormal values (below 2⁻¹²⁶ in magnitude) as zero.
//! Where the CPU lacks AVX512-BF16, `Operand::rounded` makes the operands'
//! bf16 values as f32 copies for sgemm: the same numbers, up to the order of
//! the f32 sums (and those subnormals), slower.

/// Rows of C per register tile.
const MR: usize = 12;
/// Columns of C per register tile: two zmm of 16 f32.
const NR: usize = 32;
/// Depths per packed block (even: pairs never straddle blocks).
const KC: usize = 256;
/// Rows of A per packed block (a multiple of MR).
const MC: usize = 8 * MR;
/// Columns of B per packed block.
const NC: usize = 2048;

/// `x` rounded to the nearest bf16, ties to even, as its 16 bits (a NaN stays
/// a quiet NaN).
pub fn bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to the nearest bf16, as an f32.
pub fn round(x: f32) -> f32 {
    f32::from_bits((bits(x) as u32) << 16)
}

/// Two depths of one row or column, as `vdpbf16ps` reads them.
fn pair(lo: f32, hi: f32) -> u32 {
    bits(lo) as u32 | (bits(hi) as u32) << 16
}

/// Whether this CPU runs the AVX512-BF16 kernel (else `Operand::rounded` +
/// sgemm). `PROMOT_BF16_KERNEL=off` takes the other path on any CPU (to
/// compare them), read once per process.
pub fn has_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            let off = std::env::var("PROMOT_BF16_KERNEL").is_ok_and(|v| v == "off");
            !off && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A stored f32 operand: op(X) (rows, cols) is X when not `trans`, else Xᵀ;
/// X's rows are `ld` values apart.
#[derive(Clone, Copy)]
pub struct Operand {
    pub ptr: *const f32,
    pub ld: usize,
    pub trans: bool,
}

impl Operand {
    /// The stored values of op(X) (rows, cols) rounded to bf16, contiguous
    /// (rows `cols` apart, or `rows` apart when `trans`): what sgemm
    /// multiplies where the CPU lacks the kernel.
    ///
    /// # Safety
    /// Inside the operand.
    pub unsafe fn rounded(&self, rows: usize, cols: usize) -> Vec<f32> {
        let (stored_rows, stored_cols) = if self.trans { (cols, rows) } else { (rows, cols) };
        let mut out = Vec::with_capacity(stored_rows * stored_cols);
        for r in 0..stored_rows {
            // SAFETY: row r of the stored operand, `stored_cols` values.
            let row = unsafe { std::slice::from_raw_parts(self.ptr.add(r * self.ld), stored_cols) };
            out.extend(row.iter().map(|&x| round(x)));
        }
        out
    }
}

/// op(A) rows i0 .. i0 + mc, depths p0 .. p0 + kc, into strips of MR rows:
/// strip s, depth pair q, row r at `(s * kq + q) * MR + r`.
///
/// # Safety
/// AVX512-BF16; the block is inside A.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_a(a: Operand, (i0, mc): (usize, usize), (p0, kc): (usize, usize), out: &mut [u32]) {
    let kq = kc.div_ceil(2);
    for (s, strip) in out.chunks_mut(kq * MR).take(mc.div_ceil(MR)).enumerate() {
        let rows = MR.min(mc - s * MR);
        // SAFETY (both arms): rows i0 + s·MR .. + rows and depths p0 .. p0 + kc are inside A;
        // the strip holds kq · MR values.
        unsafe {
            if a.trans {
                // Depth p's rows are contiguous: one pair of stored rows per depth pair.
                for q in 0..kq {
                    let row = |p: usize| a.ptr.add((p0 + p) * a.ld + i0 + s * MR);
                    let hi = (2 * q + 1 < kc).then(|| row(2 * q + 1));
                    pairs_across(row(2 * q), hi, rows, MR, strip.as_mut_ptr().add(q * MR));
                }
            } else {
                for r in 0..MR {
                    let dst = strip.as_mut_ptr().add(r);
                    match r < rows {
                        true => pairs_along(a.ptr.add((i0 + s * MR + r) * a.ld + p0), kc, dst, MR),
                        false => (0..kq).for_each(|q| *dst.add(q * MR) = 0),
                    }
                }
            }
        }
    }
}

/// op(B) depths p0 .. p0 + kc, columns j0 .. j0 + nc, into strips of NR
/// columns: strip s, depth pair q, column c at `(s * kq + q) * NR + c`.
///
/// # Safety
/// AVX512-BF16; the block is inside B.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_b(b: Operand, (p0, kc): (usize, usize), (j0, nc): (usize, usize), out: &mut [u32]) {
    let kq = kc.div_ceil(2);
    for (s, strip) in out.chunks_mut(kq * NR).take(nc.div_ceil(NR)).enumerate() {
        let cols = NR.min(nc - s * NR);
        // SAFETY (both arms): columns j0 + s·NR .. + cols and depths p0 .. p0 + kc are
        // inside B; the strip holds kq · NR values.
        unsafe {
            if b.trans {
                // Column j's depths are contiguous (B stored (n, k), as a weight is).
                for c in 0..NR {
                    let dst = strip.as_mut_ptr().add(c);
                    match c < cols {
                        true => pairs_along(b.ptr.add((j0 + s * NR + c) * b.ld + p0), kc, dst, NR),
                        false => (0..kq).for_each(|q| *dst.add(q * NR) = 0),
                    }
                }
            } else {
                for q in 0..kq {
                    let row = |p: usize| b.ptr.add((p0 + p) * b.ld + j0 + s * NR);
                    let hi = (2 * q + 1 < kc).then(|| row(2 * q + 1));
                    pairs_across(row(2 * q), hi, cols, NR, strip.as_mut_ptr().add(q * NR));
                }
            }
        }
    }
}

/// `len` contiguous values as `len.div_ceil(2)` pairs (the last one's upper
/// half zero when `len` is odd), written `stride` apart.
///
/// # Safety
/// AVX512-BF16; `src` holds `len` values, `dst` the pairs at that stride.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_along(src: *const f32, len: usize, dst: *mut u32, stride: usize) {
    use std::arch::x86_64::*;
    let mut q = 0;
    let mut buf = [0u32; 16];
    // 32 values → 16 pairs: cvtne2ps_pbh puts `lo` in the lower 16 bf16, so the
    // u32 lanes are (src[2q], src[2q + 1]) in vdpbf16ps's order.
    while 2 * q + 32 <= len {
        // SAFETY: 32 values from 2q, inside `src`; 16 pairs at the stride.
        unsafe {
            let lo = _mm512_loadu_ps(src.add(2 * q));
            let hi = _mm512_loadu_ps(src.add(2 * q + 16));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_epi32(buf.as_mut_ptr() as *mut i32, v);
            for (t, &x) in buf.iter().enumerate() {
                *dst.add((q + t) * stride) = x;
            }
        }
        q += 16;
    }
    while 2 * q < len {
        // SAFETY: value 2q (and 2q + 1 when below len) inside `src`.
        unsafe {
            let hi = if 2 * q + 1 < len { *src.add(2 * q + 1) } else { 0.0 };
            *dst.add(q * stride) = pair(*src.add(2 * q), hi);
        }
        q += 1;
    }
}

/// `width` pairs (row0[j], row1[j]) into contiguous `dst`: the first `count`
/// from the rows (row1 None: zeros), the rest zero.
///
/// # Safety
/// AVX512-BF16; the rows hold `count` values, `dst` `width`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_across(row0: *const f32, row1: Option<*const f32>, count: usize, width: usize, dst: *mut u32) {
    use std::arch::x86_64::*;
    let mut j = 0;
    while j < width {
        let lanes = 16.min(width - j);
        let read = count.saturating_sub(j).min(16);
        let mask = |n: usize| if n >= 16 { !0u16 } else { (1u16 << n) - 1 };
        // SAFETY: `read` values of each row from j, `lanes` of `dst`; masked lanes are not touched.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(read), row0.add(j));
            let hi = match row1 {
                Some(r) => _mm512_maskz_loadu_ps(mask(read), r.add(j)),
                None => _mm512_setzero_ps(),
            };
            let lo: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(lo));
            let hi: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(hi));
            let v = _mm512_or_si512(
                _mm512_cvtepu16_epi32(lo),
                _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)),
            );
            _mm512_mask_storeu_epi32(dst.add(j) as *mut i32, mask(lanes), v);
        }
        j += 16;
    }
}

/// C (m, n) = α op(A) op(B) + β C with bf16 operands and f32 sums, through
/// the AVX512-BF16 kernel; with β 0, C is not read.
///
/// # Safety
/// `has_kernel()`; A, B and C hold operands of these extents (C's rows `ldc`
/// apart, not touched by anyone else during the call).
pub unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    (c, ldc): (*mut f32, usize),
    (alpha, beta): (f32, f32),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: inside C.
                unsafe {
                    let at = c.add(i * ldc + j);
                    *at = if beta == 0.0 { 0.0 } else { beta * *at };
                }
            }
        }
        return;
    }
    // The packed blocks, reused by this thread's next products (no allocating
    // or zeroing per call: packing writes every value the tiles read).
    thread_local! {
        static PACKED: std::cell::RefCell<(Vec<u32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    PACKED.with_borrow_mut(|(ap, bp)| {
        let grow = |v: &mut Vec<u32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0);
            }
        };
        grow(ap, KC.min(k).div_ceil(2) * MC.min(m).next_multiple_of(MR));
        grow(bp, KC.min(k).div_ceil(2) * NC.min(n).next_multiple_of(NR));
        // SAFETY: the caller's contract; the buffers hold the largest packed blocks.
        unsafe { blocks((m, n, k), a, b, (c, ldc), (alpha, beta), ap, bp) }
    })
}

/// `gemm`'s loops over packed blocks.
///
/// # Safety
/// As `gemm`, and `ap`, `bp` hold the largest packed blocks of A and B.
unsafe fn blocks(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    (c, ldc): (*mut f32, usize),
    (alpha, beta): (f32, f32),
    ap: &mut [u32],
    bp: &mut [u32],
) {
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let kq = kc.div_ceil(2);
            // SAFETY: blocks inside A and B (the caller's contract).
            unsafe { pack_b(b, (p0, kc), (j0, nc), bp) };
            let beta = if p0 == 0 { beta } else { 1.0 };
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                unsafe { pack_a(a, (i0, mc), (p0, kc), ap) };
                for js in 0..nc.div_ceil(NR) {
                    for is in 0..mc.div_ceil(MR) {
                        let (rows, cols) = (MR.min(mc - is * MR), NR.min(nc - js * NR));
                        // SAFETY: packed strips of kq pairs; the tile's rows and
                        // columns are inside C.
                        unsafe {
                            tile(
                                kq,
                                ap.as_ptr().add(is * kq * MR),
                                bp.as_ptr().add(js * kq * NR),
                                (c.add((i0 + is * MR) * ldc + j0 + js * NR), ldc),
                                (rows, cols),
                                (alpha, beta),
                            )
                        };
                    }
                }
            }
        }
    }
}

/// One MR × NR tile: C[..rows, ..cols] = α · Σ_q A pairs · B pairs + β C.
///
/// # Safety
/// AVX512-BF16; `a` holds kq · MR pairs, `b` kq · NR, C rows · cols values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(
    kq: usize,
    a: *const u32,
    b: *const u32,
    (c, ldc): (*mut f32, usize),
    (rows, cols): (usize, usize),
    (alpha, beta): (f32, f32),
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..kq {
        // SAFETY: pair q of the strips (the caller's contract); a u32 of
        // pairs is two bf16, which is what __m512bh holds.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_epi32(b.add(q * NR) as *const i32));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_epi32(b.add(q * NR + 16) as *const i32));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(q * MR + r) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
            }
        }
    }
    let mut out = [0f32; MR * NR];
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: 16 values of row r's half, inside `out`.
        unsafe {
            _mm512_storeu_ps(out.as_mut_ptr().add(r * NR), acc[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(r * NR + 16), acc[1]);
        }
    }
    for r in 0..rows {
        let row = &out[r * NR..r * NR + cols];
        // SAFETY: row r of the tile has `cols` values in C.
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), cols) };
        if beta == 0.0 {
            dst.iter_mut().zip(row).for_each(|(d, s)| *d = alpha * s);
        } else {
            dst.iter_mut().zip(row).for_each(|(d, s)| *d = alpha * s + beta * *d);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_a(_a: Operand, _rows: (usize, usize), _depths: (usize, usize), _out: &mut [u32]) {
    unreachable!("bf16::gemm needs has_kernel()")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_b(_b: Operand, _depths: (usize, usize), _cols: (usize, usize), _out: &mut [u32]) {
    unreachable!("bf16::gemm needs has_kernel()")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile(
    _kq: usize,
    _a: *const u32,
    _b: *const u32,
    _c: (*mut f32, usize),
    _tile: (usize, usize),
    _scale: (f32, f32),
) {
    unreachable!("bf16::gemm needs has_kernel()")
}
