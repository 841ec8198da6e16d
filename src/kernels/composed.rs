//! The device-generic path: each op composed from candle ops that have a
//! backward pass, so gradients flow on every device and dtype (CUDA and
//! Metal run this). The same formulas as the fused CPU kernels; the tests
//! compare the two and check this path against transformers' fixtures.
//!
//! Shape legend: b batch, h query heads, g key/value heads, r = h / g, n
//! queries, m keys, k per-head width, v classes.

use candle_core::{DType, Tensor, D};

use super::rope::HeadLayout;
use super::{Dropout, Heads};
use crate::error::{Error, Result};

/// a b (candle's matmul, batched over leading dimensions) at this thread's
/// precision: under bf16, f32 operands are multiplied as bf16 copies (the
/// device sums in f32: cuBLAS on a GPU) and the product comes back in f32;
/// the casts' backward turns the gradients back into f32 for the f32
/// operands, which stay the master copy (`precision.rs`).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let f32_pair = a.dtype() == DType::F32 && b.dtype() == DType::F32;
    if f32_pair && super::precision::current() == super::precision::MatmulDtype::Bf16 {
        let product = a.to_dtype(DType::BF16)?.matmul(&b.to_dtype(DType::BF16)?)?;
        return Ok(product.to_dtype(DType::F32)?);
    }
    Ok(a.matmul(b)?)
}

/// exp(x - max x) / Σ exp(x - max x) over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// x / sqrt(mean(x²) + eps) · w, in f32, returned in x's dtype.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let mean_sq = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(mean_sq + eps)?.sqrt()?)?;
    Ok(normed.to_dtype(w.dtype())?.broadcast_mul(w)?.to_dtype(dtype)?)
}

/// Per-row label-smoothed cross-entropy of logits (n, v) against ids (n) u32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let nll = logp
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?
        .neg()?;
    Ok(if eps > 0.0 {
        let uniform = (logp.sum(D::Minus1)?.neg()? / v as f64)?;
        ((nll * (1.0 - eps))? + (uniform * eps)?)?
    } else {
        nll
    })
}

/// max(x, 0) as x ⊙ [x > 0]: the derivative is PyTorch's, 0 at x = 0.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    let positive = x.gt(&x.zeros_like()?)?.to_dtype(x.dtype())?;
    Ok(x.mul(&positive)?)
}

/// x ⊙ cos + rotate_half(x) ⊙ sin, rotate_half(x) = [-x₂ | x₁].
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: HeadLayout) -> Result<Tensor> {
    let (cos, sin) = (cos.to_dtype(x.dtype())?, sin.to_dtype(x.dtype())?);
    match layout {
        HeadLayout::Split => rotate(x, &cos, &sin),
        HeadLayout::Merged(h) => {
            // (b, n, h k) -> (b, n, h, k), tables (b, 1, n, k) -> (b, n, 1, k).
            let (b, n, hk) = x.dims3()?;
            if h == 0 || hk % h != 0 {
                return Err(Error::msg(format!("rope: width {hk} is not {h} heads")));
            }
            let x4 = x.reshape((b, n, h, hk / h))?;
            let y = rotate(&x4, &cos.transpose(1, 2)?, &sin.transpose(1, 2)?)?;
            Ok(y.reshape((b, n, hk))?)
        }
    }
}

fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let rotated = Tensor::cat(
        &[&x.narrow(D::Minus1, half, half)?.neg()?, &x.narrow(D::Minus1, 0, half)?],
        D::Minus1,
    )?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

/// (b, n, heads k) -> (b, heads, n, k)
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, hk) = x.dims3()?;
    Ok(x.reshape((b, n, heads, hk / heads))?.transpose(1, 2)?.contiguous()?)
}

/// `kernels::attend` from candle ops: split the heads, group the r query
/// heads of each key/value head as rows, scores in the inputs' dtype, the
/// bias added and the softmax taken in f32, dropout on the weights, the
/// weighted values, the heads merged back.
pub fn attend(q: &Tensor, kv: &Tensor, bias: &Tensor, heads: Heads, drop: &Dropout, train: bool) -> Result<Tensor> {
    let (b, n, hk) = q.dims3()?;
    let (_, m, width) = kv.dims3()?;
    let Heads { query: h, kv: g, scale } = heads;
    if h == 0 || g == 0 || h % g != 0 || hk % h != 0 || width != 2 * g * (hk / h) {
        return Err(Error::msg(format!(
            "attention: q width {hk} and kv width {width} are not {h} query heads over {g} key/value heads"
        )));
    }
    let (k, r) = (hk / h, h / g);
    let keys = split_heads(&kv.narrow(2, 0, g * k)?, g)?; // (b, g, m, k)
    let values = split_heads(&kv.narrow(2, g * k, g * k)?, g)?;
    let mut q = split_heads(q, h)?.reshape((b, g, r * n, k))?;
    if scale != 1.0 {
        q = (q * scale as f64)?;
    }
    let scores = super::batched_matmul(&q, &keys, false, true)?
        .reshape((b, h, n, m))?
        .to_dtype(DType::F32)?
        .broadcast_add(&bias.to_dtype(DType::F32)?)?;
    let weights = super::softmax(&scores)?.to_dtype(q.dtype())?;
    let weights = drop.apply(&weights, train)?;
    let ctx = super::batched_matmul(&weights.reshape((b, g, r * n, m))?, &values, false, false)?;
    Ok(ctx.reshape((b, h, n, k))?.transpose(1, 2)?.reshape((b, n, h * k))?)
}
