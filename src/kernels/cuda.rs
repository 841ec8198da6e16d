//! The fused ops' CUDA side: each `cuda_fwd` of `fused.rs` (softmax, RMS norm,
//! the label-smoothed cross-entropy, forward and backward) launches one kernel
//! of `cuda/fused.cu`, compiled to PTX at build time (build.rs), on candle's
//! stream, so a training step on the GPU makes no host round trip for them.
//! The formulas are `fused.rs`'s; scripts/gpu-check.sh checks these kernels
//! against the CPU through the models' logits and gradients.
//!
//! Row kernels run one block of `ROW_THREADS` threads per row.
//!
//! Dropout (`dropout.rs`'s `StreamMask`) runs `cuda/dropout.cu`: each thread
//! makes one 16-word block of the CPU's ChaCha8 stream and drops with it.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaDevice, CudaStorage, Layout, Shape};

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// Threads per row block: `ROW_THREADS` in fused.cu.
const ROW_THREADS: u32 = 256;
/// Rows a block of the weight-gradient kernel sums: `GRAD_W_ROWS` in fused.cu.
const GRAD_W_ROWS: usize = 64;
const MODULE: &str = "promot_fused";
/// Threads per block of the dropout kernel: `BLOCK_THREADS` in dropout.cu.
const DROPOUT_THREADS: u32 = 256;

/// A contiguous operand's elements on the device.
fn view<'a, T: candle_core::cuda_backend::CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
) -> candle_core::Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("fused (cuda): operand is not contiguous"),
    }
}

/// (rows, last dimension) of a layout, as the kernels take them.
fn rows(l: &Layout) -> candle_core::Result<(usize, i32)> {
    let (n, d) = super::fused::last_dim(l)?;
    let d = i32::try_from(d).map_err(|_| candle_core::Error::Msg(format!("fused (cuda): a row of {d} elements")))?;
    Ok((n, d))
}

fn per_row(n: usize) -> candle_core::Result<LaunchConfig> {
    let blocks = u32::try_from(n).map_err(|_| candle_core::Error::Msg(format!("fused (cuda): {n} rows")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// A fresh f32 buffer of `len` elements, every one written by the kernel.
fn output(dev: &CudaDevice, len: usize) -> candle_core::Result<CudaSlice<f32>> {
    // SAFETY: each caller's kernel writes every element before it is read.
    unsafe { dev.alloc::<f32>(len) }
}

fn wrap(out: CudaSlice<f32>, dev: &CudaDevice, shape: Shape) -> (CudaStorage, Shape) {
    (CudaStorage::wrap_cuda_slice(out, dev.clone()), shape)
}

/// softmax over the last dimension.
pub(super) fn softmax(xs: &CudaStorage, xl: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, d) = rows(xl)?;
    let x = view::<f32>(xs, xl)?;
    let y = output(dev, xl.shape().elem_count())?;
    let func = dev.get_or_load_custom_func("promot_softmax", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&y);
    b.arg(&d);
    // SAFETY: the kernel reads n·d inputs and writes n·d outputs, the sizes of x and y.
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(y, dev, xl.shape().clone()))
}

/// (y, g) -> the softmax's input gradient.
pub(super) fn softmax_grad(
    ys: &CudaStorage,
    yl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = ys.device();
    let (n, d) = rows(yl)?;
    let (y, g) = (view::<f32>(ys, yl)?, view::<f32>(gs, gl)?);
    let dx = output(dev, yl.shape().elem_count())?;
    let func = dev.get_or_load_custom_func("promot_softmax_grad", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&y);
    b.arg(&g);
    b.arg(&dx);
    b.arg(&d);
    // SAFETY: y, g and dx all hold n·d elements (same shapes, checked by the op's caller).
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(dx, dev, yl.shape().clone()))
}

/// x r w, r = 1 / sqrt(mean(x²) + eps) per row.
pub(super) fn rms_norm(
    xs: &CudaStorage,
    xl: &Layout,
    ws: &CudaStorage,
    wl: &Layout,
    eps: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, d) = rows(xl)?;
    let (x, w) = (view::<f32>(xs, xl)?, view::<f32>(ws, wl)?);
    let y = output(dev, xl.shape().elem_count())?;
    let func = dev.get_or_load_custom_func("promot_rms_norm", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&w);
    b.arg(&y);
    b.arg(&d);
    b.arg(&eps);
    // SAFETY: x and y hold n·d elements, w holds d (kernels::rms_norm checks).
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(y, dev, xl.shape().clone()))
}

/// (x, w, g) -> the RMS norm's input gradient.
pub(super) fn rms_norm_grad_x(
    (xs, xl): (&CudaStorage, &Layout),
    (ws, wl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    eps: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, d) = rows(xl)?;
    let (x, w, g) = (view::<f32>(xs, xl)?, view::<f32>(ws, wl)?, view::<f32>(gs, gl)?);
    let dx = output(dev, xl.shape().elem_count())?;
    let func = dev.get_or_load_custom_func("promot_rms_norm_grad_x", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&w);
    b.arg(&g);
    b.arg(&dx);
    b.arg(&d);
    b.arg(&eps);
    // SAFETY: x, g and dx hold n·d elements, w holds d.
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(dx, dev, xl.shape().clone()))
}

/// (x, g) -> the RMS norm's weight gradient (d): r per row, then the column
/// sums, added by blocks of rows into a zeroed buffer.
pub(super) fn rms_norm_grad_w(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    eps: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, d) = rows(xl)?;
    let (x, g) = (view::<f32>(xs, xl)?, view::<f32>(gs, gl)?);
    let r = output(dev, n)?;
    let func = dev.get_or_load_custom_func("promot_inv_rms", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&r);
    b.arg(&d);
    b.arg(&eps);
    // SAFETY: x holds n·d elements, r n.
    unsafe { b.launch(per_row(n)?) }.w()?;
    let dw = dev.alloc_zeros::<f32>(d as usize)?;
    let n_i32 = i32::try_from(n).map_err(|_| candle_core::Error::Msg(format!("fused (cuda): {n} rows")))?;
    let cfg = LaunchConfig {
        grid_dim: ((d as u32).div_ceil(ROW_THREADS), n.div_ceil(GRAD_W_ROWS) as u32, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let func = dev.get_or_load_custom_func("promot_rms_norm_grad_w", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&g);
    b.arg(&r);
    b.arg(&dw);
    b.arg(&n_i32);
    b.arg(&d);
    // SAFETY: x and g hold n·d elements, r n and dw d; threads past column d return.
    unsafe { b.launch(cfg) }.w()?;
    Ok(wrap(dw, dev, Shape::from(d as usize)))
}

/// Per-row label-smoothed cross-entropy of logits (n, v) against u32 ids (n).
pub(super) fn cross_entropy(
    xs: &CudaStorage,
    xl: &Layout,
    ts: &CudaStorage,
    tl: &Layout,
    eps: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, v) = rows(xl)?;
    let (x, t) = (view::<f32>(xs, xl)?, view::<u32>(ts, tl)?);
    let loss = output(dev, n)?;
    let func = dev.get_or_load_custom_func("promot_cross_entropy", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&t);
    b.arg(&loss);
    b.arg(&v);
    b.arg(&eps);
    // SAFETY: x holds n·v elements, the targets and the loss n (kernels::cross_entropy checks).
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(loss, dev, Shape::from(n)))
}

/// (logits, targets, g) -> the cross-entropy's gradient on the logits.
pub(super) fn cross_entropy_grad(
    (xs, xl): (&CudaStorage, &Layout),
    (ts, tl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    eps: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let (n, v) = rows(xl)?;
    let (x, t, g) = (view::<f32>(xs, xl)?, view::<u32>(ts, tl)?, view::<f32>(gs, gl)?);
    let dx = output(dev, xl.shape().elem_count())?;
    let func = dev.get_or_load_custom_func("promot_cross_entropy_grad", MODULE, ptx::FUSED)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&t);
    b.arg(&g);
    b.arg(&dx);
    b.arg(&v);
    b.arg(&eps);
    // SAFETY: x and dx hold n·v elements, the targets and g n.
    unsafe { b.launch(per_row(n)?) }.w()?;
    Ok(wrap(dx, dev, xl.shape().clone()))
}

/// x ⊙ mask, the mask from words [start, start + n) of the ChaCha8 stream
/// under `key` (n = x's elements): `scale` where a word is below `threshold`.
pub(super) fn dropout(
    xs: &CudaStorage,
    xl: &Layout,
    key: [u32; 8],
    start: u64,
    threshold: u32,
    scale: f32,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let dev = xs.device();
    let x = view::<f32>(xs, xl)?;
    let n = xl.shape().elem_count();
    let y = output(dev, n)?;
    let stream_blocks = ((start % 16) as usize + n).div_ceil(16);
    let grid = u32::try_from(stream_blocks.div_ceil(DROPOUT_THREADS as usize))
        .map_err(|_| candle_core::Error::Msg(format!("dropout (cuda): {n} elements")))?;
    let cfg = LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (DROPOUT_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let n = n as u64;
    let func = dev.get_or_load_custom_func("promot_dropout", "promot_dropout", ptx::DROPOUT)?;
    let mut b = func.builder();
    b.arg(&x);
    b.arg(&y);
    b.arg(&n);
    b.arg(&start);
    for k in &key {
        b.arg(k);
    }
    b.arg(&threshold);
    b.arg(&scale);
    // SAFETY: x and y hold n elements; the kernel writes y[i] for each i < n and
    // touches nothing past it.
    unsafe { b.launch(cfg) }.w()?;
    Ok(wrap(y, dev, xl.shape().clone()))
}
