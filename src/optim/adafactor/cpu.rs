//! Adafactor's update (the rule in `super`'s docs) as three passes over a
//! parameter on the CPU, instead of the fifteen or so whole-tensor ops the
//! composed rule runs (each allocating its result):
//!
//! ```text
//! pass 1  read g        factored: row and column sums of G = g² + eps1 -> R, C, the two factors
//!                       full:     V = beta2_t·V + (1 - beta2_t)·G (written), Σ u²
//! pass 2  read g (, x)  factored: Σ u² with u = g · f_r · f_c;  Σ x² for the parameter scale
//! pass 3  read g, x     x ← x·(1 - weight_decay·α) - (α / clip)·u
//! ```
//!
//! It applies to f32 CPU tensors, contiguous, rank 2 when factored (every
//! weight matrix) or any rank in full, without momentum (`beta1` unset, the
//! paper's setting); anything else takes the composed rule. Sums are f64.
//! tests/optim.rs checks it against the composed rule step by step.

use candle_core::{Layout, Storage, Tensor};
use rayon::prelude::*;

use super::{AdafactorConfig, SecondMoment};
use crate::error::{Error, Result};

/// Elements per rayon task at the least.
const CHUNK: usize = 1 << 14;

/// The f32 values of a contiguous CPU tensor's storage.
fn slice_of<'a>(storage: &'a Storage, layout: &Layout) -> Option<&'a [f32]> {
    let (start, end) = layout.contiguous_offsets()?;
    match storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>().ok().map(|s| &s[start..end]),
        _ => None,
    }
}

/// The new parameter value and second moment, or `None` when this path does
/// not apply (the caller runs the composed rule).
pub(super) fn update(
    cfg: &AdafactorConfig,
    beta2t: f64,
    x: &Tensor,
    g: &Tensor,
    second: &SecondMoment,
    factored: Option<(usize, usize)>,
) -> Result<Option<(Tensor, SecondMoment)>> {
    if cfg.beta1.is_some() || !x.device().is_cpu() || x.dims() != g.dims() {
        return Ok(None);
    }
    let state: Vec<&Tensor> = match second {
        SecondMoment::Factored { row, col } => vec![row, col],
        SecondMoment::Full(v) => vec![v],
    };
    // Read locks on every operand's storage for the whole update (the new
    // value is a fresh tensor, written back after they are released).
    let locked: Vec<_> = [x, g]
        .into_iter()
        .chain(state)
        .map(|t| t.storage_and_layout())
        .collect();
    let Some(slices) = locked
        .iter()
        .map(|(s, l)| slice_of(s, l))
        .collect::<Option<Vec<&[f32]>>>()
    else {
        return Ok(None);
    };
    let (xs, gs) = (slices[0], slices[1]);
    let n = gs.len();
    if xs.len() != n || n == 0 {
        return Ok(None);
    }
    let (b, eps1) = (beta2t as f32, cfg.eps1 as f32);
    let big_g = |v: f32| v * v + eps1;

    // Pass 1: the second moment, and a per-element inverse sqrt(V) as a closure.
    let (new_second, scale) = match (second, factored) {
        (SecondMoment::Factored { row, col }, Some((r, c))) if g.rank() == 2 => {
            let (n0, n1) = g.dims2()?;
            // Sums of G along each dim: per dim-0 index (over dim 1) and per dim-1 index.
            let rows_per_task = (CHUNK / n1.max(1)).max(1);
            let (sum0, sum1) = (0..n0.div_ceil(rows_per_task))
                .into_par_iter()
                .map(|t| {
                    let (i0, i1) = (t * rows_per_task, ((t + 1) * rows_per_task).min(n0));
                    let mut s0 = vec![0f64; i1 - i0];
                    let mut s1 = vec![0f64; n1];
                    for i in i0..i1 {
                        for (j, &v) in gs[i * n1..(i + 1) * n1].iter().enumerate() {
                            let e = big_g(v) as f64;
                            s0[i - i0] += e;
                            s1[j] += e;
                        }
                    }
                    (i0, s0, s1)
                })
                .fold(
                    || (vec![0f64; n0], vec![0f64; n1]),
                    |(mut a0, mut a1), (i0, s0, s1)| {
                        a0[i0..i0 + s0.len()].copy_from_slice(&s0);
                        a1.iter_mut().zip(&s1).for_each(|(a, s)| *a += s);
                        (a0, a1)
                    },
                )
                .reduce(
                    || (vec![0f64; n0], vec![0f64; n1]),
                    |(mut a0, mut a1), (b0, b1)| {
                        a0.iter_mut().zip(&b0).for_each(|(a, s)| *a += s);
                        a1.iter_mut().zip(&b1).for_each(|(a, s)| *a += s);
                        (a0, a1)
                    },
                );
            // mean over dim c of G, per index of dim r (R), and over dim r per index of dim c (C).
            let (r_mean, c_mean): (Vec<f64>, Vec<f64>) = if (r, c) == (0, 1) {
                (
                    sum0.iter().map(|s| s / n1 as f64).collect(),
                    sum1.iter().map(|s| s / n0 as f64).collect(),
                )
            } else {
                (
                    sum1.iter().map(|s| s / n0 as f64).collect(),
                    sum0.iter().map(|s| s / n1 as f64).collect(),
                )
            };
            let (old_r, old_c) = (slices[2], slices[3]);
            if old_r.len() != r_mean.len() || old_c.len() != c_mean.len() {
                return Err(Error::msg("adafactor: factored state does not fit its parameter"));
            }
            let ema = |old: &[f32], new: &[f64]| -> Vec<f32> {
                old.iter()
                    .zip(new)
                    .map(|(&o, &m)| b * o + (1.0 - b) * m as f32)
                    .collect()
            };
            let (new_r, new_c) = (ema(old_r, &r_mean), ema(old_c, &c_mean));
            let r_avg = new_r.iter().map(|&v| v as f64).sum::<f64>() / new_r.len() as f64;
            let f_r: Vec<f32> = new_r.iter().map(|&v| 1.0 / (v / r_avg as f32).sqrt()).collect();
            let f_c: Vec<f32> = new_c.iter().map(|&v| 1.0 / v.sqrt()).collect();
            // Factor per dim-0 index and per dim-1 index.
            let (f0, f1) = if (r, c) == (0, 1) { (f_r, f_c) } else { (f_c, f_r) };
            let second = SecondMoment::Factored {
                row: Tensor::from_vec(new_r, row.dims(), row.device())?,
                col: Tensor::from_vec(new_c, col.dims(), col.device())?,
            };
            (second, Scale::Outer { f0, f1 })
        }
        (SecondMoment::Full(v), None) => {
            let old = slices[2];
            if old.len() != n {
                return Err(Error::msg("adafactor: second moment does not fit its parameter"));
            }
            let mut new_v = vec![0f32; n];
            new_v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    let k = c * CHUNK + j;
                    *o = b * old[k] + (1.0 - b) * big_g(gs[k]);
                }
            });
            let inv: Vec<f32> = new_v.par_iter().map(|&v| 1.0 / v.sqrt()).collect();
            let second = SecondMoment::Full(Tensor::from_vec(new_v, v.dims(), v.device())?);
            (second, Scale::Each(inv))
        }
        _ => return Ok(None),
    };

    // Pass 2: the update's RMS (for clipping) and the parameter's (for its scale).
    let u_sq = scale.rows(gs).map(|(g, f0, f1)| row_u_sq(g, f0, f1)).sum::<f64>();
    let clip = ((u_sq / n as f64).sqrt() / cfg.clip_threshold).max(1.0);
    let alpha = if cfg.multiply_by_parameter_scale {
        let x_sq: f64 = xs
            .par_chunks(CHUNK)
            .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
            .sum();
        cfg.lr * (x_sq / n as f64).sqrt().max(cfg.eps2)
    } else {
        cfg.lr
    };
    let keep = (1.0 - cfg.weight_decay * alpha) as f32;
    let step = (alpha / clip) as f32;

    // Pass 3: the new value, x·keep - step·g·f.
    let mut out = vec![0f32; n];
    let width = scale.width(n);
    out.par_chunks_mut(width)
        .zip(xs.par_chunks(width))
        .zip(scale.rows(gs))
        .for_each(|((o, x), (g, f0, f1))| {
            for (j, ((o, &x), &g)) in o.iter_mut().zip(x).zip(g).enumerate() {
                *o = x * keep - step * g * (f0 * f1[j]);
            }
        });
    Ok(Some((Tensor::from_vec(out, x.dims(), x.device())?, new_second)))
}

/// 1 / sqrt(V) per element: the outer product of a factor per dim-0 index
/// and one per dim-1 index, or one value per element.
enum Scale {
    Outer { f0: Vec<f32>, f1: Vec<f32> },
    Each(Vec<f32>),
}

impl Scale {
    /// Elements per row of `rows`.
    fn width(&self, n: usize) -> usize {
        match self {
            Scale::Outer { f1, .. } => f1.len().max(1),
            Scale::Each(_) => CHUNK.min(n).max(1),
        }
    }

    /// In parallel: each row of g with its factor (row's scalar, per-column
    /// slice), so element j of a row is scaled by `f0 * f1[j]`.
    fn rows<'a>(&'a self, g: &'a [f32]) -> impl IndexedParallelIterator<Item = (&'a [f32], f32, &'a [f32])> + 'a {
        let width = self.width(g.len());
        g.par_chunks(width).enumerate().map(move |(i, row)| match self {
            Scale::Outer { f0, f1 } => (row, f0[i], f1.as_slice()),
            Scale::Each(inv) => (row, 1.0, &inv[i * width..i * width + row.len()]),
        })
    }
}

/// Σ (g_j f0 f1_j)² over one row, in f64.
fn row_u_sq(g: &[f32], f0: f32, f1: &[f32]) -> f64 {
    g.iter()
        .zip(f1)
        .map(|(&g, &f)| {
            let u = (g * (f0 * f)) as f64;
            u * u
        })
        .sum()
}
