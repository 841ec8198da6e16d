//! f32 matrix products through OpenBLAS, loaded at run time.
//!
//! candle's CPU matmul is a pure-Rust GEMM; OpenBLAS's hand-tuned kernels are
//! faster on most CPUs, and the matmuls are most of a training step. So
//! `kernels::linear` multiplies with `cblas_sgemm` when a BLAS library is at
//! hand, and with candle when it is not: nothing is linked at build time, and
//! a machine without the library computes the same things, slower. How much
//! slower depends on the CPU: on this project's AMD EPYC (AVX-512, where
//! candle's gemm does well) OpenBLAS is about 10% faster at the model's shapes
//! (x (1024, 512) · Wᵀ (512, 2048): 176 against 163 GFLOP/s on 2 quiet cores;
//! README, Performance).
//!
//! The library is the one `scripts/get-blas.sh` unpacks from PyPI's
//! `scipy-openblas32` wheel: a single self-contained `libscipy_openblas.so`
//! whose symbols carry a `scipy_` prefix (`scipy_cblas_sgemm`,
//! `scipy_openblas_set_num_threads`). It is found, once per process, at
//!
//!   1. `$PROMOT_BLAS`: a path to the library, or `off` (also `0`, `none`) to
//!      use candle's matmul;
//!   2. `models/cache/blas/libscipy_openblas.so` under the working directory;
//!   3. the same under this crate's source directory (for tests and benches,
//!      which cargo runs elsewhere).
//!
//! A library that is missing or lacks the symbols leaves the candle path in
//! place; `backend()` says which one is in use.
//!
//! Threads: OpenBLAS's own thread pool spin-waits between calls, and on a
//! busy machine (this project's 2 cores, shared) a product then waits for a
//! descheduled worker: a SmolLM2 test took 123 s with OpenBLAS on 2 threads,
//! 15 s on 1 and 27 s on candle's gemm. So OpenBLAS runs single-threaded
//! (`openblas_set_num_threads(1)`, unless `OPENBLAS_NUM_THREADS` is set), and
//! `gemm` splits the output rows into promot's thread count of tasks
//! (`--threads`, i.e. `RAYON_NUM_THREADS`, else one per core) on rayon's
//! pool, the one candle's matmul, `gemv` and `fused` use.
//!
//! `OPENBLAS_CORETYPE` picks the kernel family by hand; otherwise the library
//! detects the CPU, and `backend()` names the core in use. It matters: on this
//! project's AMD EPYC, detected as `SkylakeX` (AVX-512 kernels), forcing
//! `Haswell` (AVX2) took the feed-forward product from 176 to 130 GFLOP/s on
//! a quiet moment (`PROMOT_BENCH_ONLY=gemm cargo bench --bench train_step`).
//! So leave it unset unless detection is wrong.
//!
//! Precision: a product reads its thread's `precision::current()` when it
//! starts ([`here`]); under `dtype: "bf16"` the same calls multiply bf16
//! operands with f32 sums (`bf16.rs`) instead of calling sgemm.
//!
//! Row-major throughout: `gemm(ta, tb, ...)` computes C (m, n) = op(A) op(B)
//! with op(A) (m, k), op(B) (k, n), each operand stored contiguous in its own
//! (transposed or not) shape.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Layout, Tensor};
use rayon::prelude::*;

use super::bf16;
use super::fused::values;
use super::precision::{self, MatmulDtype};
use crate::error::{Error, Result};

/// The library's file name, as `scripts/get-blas.sh` places it.
pub const LIB_NAME: &str = "libscipy_openblas.so";

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
/// A task gets at least this many rows of C ...
const MIN_ROWS: usize = 32;
/// ... and this much work (flops): below it one call on one thread is faster.
pub(crate) const MIN_FLOPS: usize = 1 << 22;

type Sgemm = unsafe extern "C" fn(
    order: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
);
type SetThreads = unsafe extern "C" fn(n: c_int);
type CoreName = unsafe extern "C" fn() -> *const std::ffi::c_char;

/// A loaded BLAS library and the entry points promot uses.
pub struct Blas {
    sgemm: Sgemm,
    path: PathBuf,
    core: String,
    /// OpenBLAS's own threads (None: as `OPENBLAS_NUM_THREADS` says).
    threads: Option<usize>,
    /// Tasks one product is split into.
    tasks: usize,
    /// Keeps the code behind `sgemm` mapped; never unloaded.
    _lib: libloading::Library,
}

static BLAS: OnceLock<Option<Blas>> = OnceLock::new();

/// The BLAS library, loaded on first use; None when there is none (or
/// `PROMOT_BLAS=off`).
pub fn get() -> Option<&'static Blas> {
    if super::generic_forced() {
        return None;
    }
    BLAS.get_or_init(|| {
        let explicit = std::env::var_os("PROMOT_BLAS").is_some();
        candidates().iter().find_map(|p| match Blas::load(p) {
            Ok(blas) => Some(blas),
            Err(e) => {
                // A path the user named deserves a word; the default places may simply be empty.
                if explicit {
                    eprintln!("warning: {e}; using candle's matmul");
                }
                None
            }
        })
    })
    .as_ref()
}

/// The BLAS library with this thread's product precision
/// (`precision::current`), for a product that starts here: its worker tasks
/// get the copy. None when there is no library.
pub fn here() -> Option<Gemm> {
    get().map(|lib| Gemm {
        lib,
        dtype: precision::current(),
    })
}

/// The library and the precision of one product (copied into its tasks).
#[derive(Clone, Copy)]
pub struct Gemm {
    lib: &'static Blas,
    dtype: MatmulDtype,
}

/// Which matmul backend `kernels::linear` uses, in words.
pub fn backend() -> String {
    match get() {
        Some(b) => format!(
            "OpenBLAS sgemm ({}, core {}, {} thread(s) each, split over {} task(s))",
            b.path.display(),
            b.core,
            b.threads.map_or("OPENBLAS_NUM_THREADS".to_string(), |n| n.to_string()),
            b.tasks
        ),
        None => "candle gemm (no BLAS library: see scripts/get-blas.sh)".to_string(),
    }
}

/// Where to look, in order (empty when disabled).
fn candidates() -> Vec<PathBuf> {
    match std::env::var("PROMOT_BLAS") {
        Ok(v) if matches!(v.trim(), "off" | "0" | "none" | "") => Vec::new(),
        Ok(v) => vec![PathBuf::from(v)],
        Err(_) => {
            let rel = Path::new("models").join("cache").join("blas").join(LIB_NAME);
            vec![rel, crate::home::cache_dir().join("blas").join(LIB_NAME)]
        }
    }
}

/// promot's thread count: `RAYON_NUM_THREADS` (what `--threads` sets), else one per core.
fn promot_threads() -> usize {
    candle_core::utils::get_num_threads()
}

impl Blas {
    fn load(path: &Path) -> Result<Blas> {
        if !path.is_file() {
            return Err(Error::msg(format!("no BLAS library at {}", path.display())));
        }
        let err = |e: libloading::Error| Error::msg(format!("BLAS library {}: {e}", path.display()));
        // SAFETY: loading runs the library's initialisers; OpenBLAS's only set up
        // its thread pool and CPU detection.
        let lib = unsafe { libloading::Library::new(path) }.map_err(err)?;
        // SAFETY: the signatures are CBLAS's and OpenBLAS's, as the library declares them.
        let sgemm: Sgemm = *unsafe { lib.get::<Sgemm>(b"scipy_cblas_sgemm\0") }.map_err(err)?;
        let set_threads: Option<SetThreads> = unsafe { lib.get::<SetThreads>(b"scipy_openblas_set_num_threads\0") }
            .ok()
            .map(|f| *f);
        let core_name: Option<CoreName> = unsafe { lib.get::<CoreName>(b"scipy_openblas_get_corename\0") }
            .ok()
            .map(|f| *f);
        let threads = match (std::env::var_os("OPENBLAS_NUM_THREADS"), set_threads) {
            (None, Some(set)) => {
                // SAFETY: plain setter.
                unsafe { set(1) };
                Some(1)
            }
            _ => None,
        };
        let core = core_name
            .map(|f| {
                // SAFETY: returns a static NUL-terminated string (or null).
                let p = unsafe { f() };
                if p.is_null() {
                    "unknown".to_string()
                } else {
                    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            })
            .unwrap_or_else(|| "unknown".to_string());
        Ok(Blas {
            sgemm,
            path: path.to_path_buf(),
            core,
            threads,
            tasks: promot_threads(),
            _lib: lib,
        })
    }
}

impl Gemm {
    /// How many tasks a product may be split into (promot's thread count).
    pub(crate) fn tasks(&self) -> usize {
        self.lib.tasks
    }

    /// C (m, n) = op(A) op(B), op(A) (m, k), op(B) (k, n), row-major; `ta`
    /// means A is stored as (k, m), `tb` that B is stored as (n, k). Checks
    /// every length before calling into the library.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, ta: bool, tb: bool, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        let too_big = |x: usize| x > c_int::MAX as usize;
        let (mk, kn, mn) = (m.saturating_mul(k), k.saturating_mul(n), m.saturating_mul(n));
        if a.len() != mk || b.len() != kn || [m, n, k, mn].into_iter().any(too_big) {
            return Err(Error::msg(format!(
                "blas gemm: A has {} values and B {} for m {m}, n {n}, k {k}",
                a.len(),
                b.len()
            )));
        }
        if m == 0 || n == 0 || k == 0 {
            return Ok(vec![0f32; m * n]);
        }
        // Blocks of C, one per task, none under MIN_ROWS rows (columns) or MIN_FLOPS of work:
        // row blocks, except that bf16 splits a wide C by columns, because each
        // task packs the part of B it reads (the vocabulary projection's B is the
        // whole embedding table).
        let by_columns = self.dtype == MatmulDtype::Bf16 && n > m;
        let split = if by_columns { n } else { m };
        let by_work = (2 * mn).saturating_mul(k) / MIN_FLOPS;
        let tasks = self.lib.tasks.min(split.div_ceil(MIN_ROWS)).min(by_work).max(1);
        let size = split.div_ceil(tasks);
        let block = |i: usize, c: Shared| {
            let first = i * size;
            let len = size.min(split.saturating_sub(first));
            let ((r0, mc), (c0, nc)) = if by_columns {
                ((0, m), (first, len))
            } else {
                ((first, len), (0, n))
            };
            // Rows r0.. of op(A): A (m, k) from row r0; A stored (k, m) from column r0.
            let (a_at, lda) = if ta { (&a[r0..], m) } else { (&a[r0 * k..], k) };
            // Columns c0.. of op(B): B (k, n) from column c0; B stored (n, k) from row c0.
            let (b_at, ldb) = if tb { (&b[c0 * k..], k) } else { (&b[c0..], n) };
            // SAFETY: `a` and `b` hold A and B (lengths checked above), the
            // block's rows of op(A) and columns of op(B) start at `a_at` and
            // `b_at`, and its rows x columns of C are this block's alone.
            unsafe {
                self.call_strided(
                    (ta, tb),
                    (mc, nc, k),
                    (a_at.as_ptr(), lda),
                    (b_at.as_ptr(), ldb),
                    (c.at(r0 * n + c0), n),
                    (1.0, 0.0),
                )
            };
        };
        // SAFETY: the blocks cover all of C, and each product writes every value of its block.
        let c = unsafe {
            written(m * n, |c| {
                (0..tasks).into_par_iter().for_each(|i| {
                    if i * size < split {
                        block(i, c)
                    }
                })
            })
        };
        Ok(c)
    }

    /// C (m, n) = alpha op(A) op(B) + beta C on strided operands: rows of A,
    /// B and C are `lda`, `ldb` and `ldc` values apart (op(A) stored (k, m)
    /// when `ta`, op(B) stored (n, k) when `tb`); C's other values are left
    /// alone, and with beta 0 C is not read.
    ///
    /// # Safety
    /// `a`, `b` and `c` must point at operands of those extents: the last row
    /// of each starts (rows - 1) * ld values after the pointer and holds its
    /// row length of valid values; `c`'s must not be read or written by
    /// anyone else during the call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn call_strided(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        (a, lda): (*const f32, usize),
        (b, ldb): (*const f32, usize),
        (c, ldc): (*mut f32, usize),
        (alpha, beta): (f32, f32),
    ) {
        if self.dtype == MatmulDtype::Bf16 {
            let (a, b) = (
                bf16::Operand {
                    ptr: a,
                    ld: lda,
                    trans: ta,
                },
                bf16::Operand {
                    ptr: b,
                    ld: ldb,
                    trans: tb,
                },
            );
            if bf16::has_kernel() {
                // SAFETY: the caller's contract, and the CPU has the kernel.
                return unsafe { bf16::gemm((m, n, k), a, b, (c, ldc), (alpha, beta)) };
            }
            // The same numbers from the operands' bf16 values, through sgemm.
            // SAFETY: the caller's contract.
            let (ar, br) = unsafe { (a.rounded(m, k), b.rounded(k, n)) };
            let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
            let f32 = Gemm {
                dtype: MatmulDtype::F32,
                ..*self
            };
            // SAFETY: contiguous copies of the operands' extents.
            return unsafe {
                f32.call_strided(
                    (ta, tb),
                    (m, n, k),
                    (ar.as_ptr(), lda),
                    (br.as_ptr(), ldb),
                    (c, ldc),
                    (alpha, beta),
                )
            };
        }
        let flag = |t: bool| if t { TRANS } else { NO_TRANS };
        // SAFETY: the caller's contract.
        unsafe {
            (self.lib.sgemm)(
                ROW_MAJOR,
                flag(ta),
                flag(tb),
                m as c_int,
                n as c_int,
                k as c_int,
                alpha,
                a,
                lda.max(1) as c_int,
                b,
                ldb.max(1) as c_int,
                beta,
                c,
                ldc.max(1) as c_int,
            )
        };
    }
}

pub(crate) use super::batched::batched_product;

/// A raw pointer that rayon tasks may share, each writing its own disjoint
/// part of one output (rows, a head's columns, one product's block).
#[derive(Clone, Copy)]
pub(crate) struct Shared(pub(crate) *mut f32);
// SAFETY: only used for disjoint writes, as each use says.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer `offset` values on.
    ///
    /// # Safety
    /// As `pointer::add`: the offset stays inside the allocation.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }
}

/// `len` values written by `fill` through the pointer it is given, with no
/// zeroing pass first: the products overwrite their whole outputs (sgemm
/// with beta 0 does not read C).
///
/// # Safety
/// `fill` must write all `len` values.
pub(crate) unsafe fn written(len: usize, fill: impl FnOnce(Shared)) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(Shared(v.as_mut_ptr()));
    // SAFETY: the caller's contract: every value is initialised.
    unsafe { v.set_len(len) };
    v
}

/// op(A) op(B) for two 2-D CPU operands, as a candle storage.
fn product(
    ta: bool,
    tb: bool,
    a: (&candle_core::CpuStorage, &candle_core::Layout),
    b: (&candle_core::CpuStorage, &candle_core::Layout),
) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
    let Some(blas) = here() else {
        candle_core::bail!("blas: no BLAS library loaded");
    };
    let (a_rows, a_cols) = a.1.shape().dims2()?;
    let (b_rows, b_cols) = b.1.shape().dims2()?;
    let (m, k) = if ta { (a_cols, a_rows) } else { (a_rows, a_cols) };
    let (kb, n) = if tb { (b_cols, b_rows) } else { (b_rows, b_cols) };
    if k != kb {
        candle_core::bail!(
            "blas: cannot multiply {:?} by {:?} (ta {ta}, tb {tb})",
            a.1.dims(),
            b.1.dims()
        );
    }
    let c = blas
        .gemm(ta, tb, m, n, k, values(a.0, a.1)?, values(b.0, b.1)?)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok((candle_core::CpuStorage::F32(c), (m, n).into()))
}

/// Whether x (..., d) · W (o, d)ᵀ can go through `linear_wt`: a BLAS library
/// is loaded, both are f32 and contiguous on the CPU, and W is 2-D.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    let fits = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() >= 2 && t.is_contiguous();
    fits(x) && fits(w) && w.rank() == 2 && get().is_some()
}

/// y (..., o) = x Wᵀ, x (..., d), W (o, d), with its gradients through BLAS
/// too: grad x = G W, and grad W = Gᵀ x only when W is tracked (trainable),
/// so a frozen weight costs no weight-gradient product at all. The leading
/// dimensions are rows of one product: no reshape nodes in the graph.
pub fn linear_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.apply_op2_arc(w, std::sync::Arc::new(Box::new(LinearWt)))?)
}

/// A tensor (..., c) viewed as (rows, c), outside autograd.
fn rows(t: &Tensor) -> candle_core::Result<Tensor> {
    let c = t.dims().last().copied().unwrap_or(1);
    t.detach().reshape((t.elem_count() / c.max(1), c))
}

/// C = op(A) op(B) through BLAS, outside autograd.
pub fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    Ok(a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &Product { ta, tb })?)
}

struct LinearWt;

impl candle_core::CustomOp2 for LinearWt {
    fn name(&self) -> &'static str {
        "blas-linear"
    }

    fn cpu_fwd(
        &self,
        x: &candle_core::CpuStorage,
        x_layout: &candle_core::Layout,
        w: &candle_core::CpuStorage,
        w_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (c, lead) = x_layout
            .dims()
            .split_last()
            .ok_or_else(|| candle_core::Error::Msg("blas: a 0-D input".into()))?;
        let flat = Layout::contiguous_with_offset((lead.iter().product::<usize>(), *c), x_layout.start_offset());
        let (y, shape) = product(false, true, (x, &flat), (w, w_layout))?;
        let mut dims = lead.to_vec();
        dims.push(shape.dims()[1]);
        Ok((y, dims.into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let msg = |e: Error| candle_core::Error::Msg(e.to_string());
        // grad (m, o) · W (o, d) -> (m, d); gradᵀ (o, m) · x (m, d) -> (o, d), m the rows.
        let grad = rows(grad)?;
        let grad_x = if x.track_op() {
            Some(matmul(&grad, w, false, false).map_err(msg)?.reshape(x.shape())?)
        } else {
            None
        };
        let grad_w = if w.track_op() {
            Some(matmul(&grad, &rows(x)?, true, false).map_err(msg)?)
        } else {
            None
        };
        Ok((grad_x, grad_w))
    }
}

/// op(A) op(B), forward only.
struct Product {
    ta: bool,
    tb: bool,
}

impl candle_core::CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "blas-matmul"
    }

    fn cpu_fwd(
        &self,
        a: &candle_core::CpuStorage,
        a_layout: &candle_core::Layout,
        b: &candle_core::CpuStorage,
        b_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        product(self.ta, self.tb, (a, a_layout), (b, b_layout))
    }
}
