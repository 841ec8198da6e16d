//! Adafactor (Shazeer & Stern, 2018) as T5X and the prompt-tuning code train
//! with it. With the defaults it is numerically the same as transformers'
//! `Adafactor(lr, scale_parameter=False, relative_step=False, warmup_init=False,
//! decay_rate=-0.8, clip_threshold=1.0, beta1=None, weight_decay=0.0)`; with
//! `min_dim_size_to_factor = Some(128)` and `multiply_by_parameter_scale` it is
//! T5X's `t5x.adafactor.Adafactor` at its defaults (see [`AdafactorConfig::t5x`]).
//!
//! One step for a parameter `x` with gradient `g`, its own step count `t`
//! (1 on its first update) and learning rate `lr`:
//!
//! ```text
//! beta2_t = 1 - t^decay_rate                       (decay_rate = -0.8; 0 at t = 1)
//! G       = g² + eps1                              (eps1 = 1e-30, keeps rsqrt finite)
//! factored over a row dim r and a column dim c (which tensors, and which dims, below):
//!     R = beta2_t·R + (1 - beta2_t)·mean_c(G)      (G averaged over dim c: R lacks dim c)
//!     C = beta2_t·C + (1 - beta2_t)·mean_r(G)      (G averaged over dim r: C lacks dim r)
//!     V = (R / mean_r(R)) ⊗ C                      (R broadcast over c, C over r: E[g²] of rank 1
//!                                                   in (r, c), separately for every index of
//!                                                   the other dims)
//! not factored:
//!     V = beta2_t·V + (1 - beta2_t)·G
//! u  = g / sqrt(V)
//! u  = u / max(1, RMS(u) / clip_threshold)         (update clipping, threshold 1.0)
//! α  = lr · max(eps2, RMS(x))   if multiply_by_parameter_scale (eps2 = 1e-3), else lr
//! u  = α·u
//! m  = beta1·m + (1 - beta1)·u;  u = m             (only when beta1 is set)
//! x  = x - weight_decay·α·x - u                    (decoupled decay, off by default)
//! ```
//! RMS(a) = sqrt(mean(a²)) over the whole tensor; all arithmetic is f32.
//!
//! Which tensors are factored, for a tensor of rank n with dim sizes d_0..d_{n-1}
//! (scalars and vectors never are):
//!
//! ```text
//! min_dim_size_to_factor = None (default; transformers' rule):
//!     always, with r = n-2 and c = n-1 (the last two dims)
//! min_dim_size_to_factor = Some(m) (T5X's rule):
//!     c = the largest dim, r = the largest of the others, where of two equal
//!     sizes the later dim counts as the larger (a stable ascending sort of the
//!     shape, whose last two entries are r then c);
//!     factored only if d_r ≥ m, otherwise V is kept in full
//! ```
//!
//! T5X's rule is matched to `_factored_dims` in t5x/adafactor.py (numpy's
//! `argsort(shape)`, stable on such short shapes; v_row averages over the
//! largest dim, v_col over the second largest) and to optax's identical
//! `optax.adafactor` (`scale_by_factored_rms`), which is what
//! tests/fixtures/make_t5x_adafactor_fixture.py runs for the parity test. For
//! rank ≥ 3, T5X's heuristic refuses a tensor without an explicit factor rule
//! (the paper's model weights are all 2-D); there we follow optax, which applies the same
//! two-largest-dims rule with the remaining dims as batch dims. For 2-D tensors
//! the two rules factor the same pair of dims, so V agrees up to rounding; only
//! the state layout differs (T5X's R is per smaller dim).
//!
//! Not T5X's: T5X's `weight_decay_rate` decays by `(1 - weight_decay_rate)·x`,
//! not scaled by the learning rate as here; its decay schedule counts the
//! global step (less `step_offset`) rather than each parameter's own updates.
//! T5X's `max_parameter_scale`, `global_norm_clip_threshold` and explicit
//! factor rules are not implemented.

mod cpu;

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{check_lr, check_range, split_state_key, state_tensor, step_from_tensor, step_tensor, write_back};
use crate::error::{Error, Result};
use crate::params::Param;

/// Adafactor hyper-parameters; `Default` is transformers' setting above with
/// lr 1e-3 ([`AdafactorConfig::t5x`] and [`AdafactorConfig::prompt_tuning`]
/// are the paper's). As a script literal these are the keys of an
/// `optimizer: "adafactor"` group (`optim::GroupSettings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdafactorConfig {
    pub lr: f64,
    /// Added to g² before averaging.
    pub eps1: f64,
    /// Floor for the parameter scale; only used with `multiply_by_parameter_scale`.
    pub eps2: f64,
    /// Updates are scaled down so their RMS is at most this.
    pub clip_threshold: f64,
    /// beta2_t = 1 - t^decay_rate; must be negative.
    pub decay_rate: f64,
    /// First-moment (momentum) decay; `None` keeps no first moment.
    pub beta1: Option<f64>,
    /// Decoupled weight decay, multiplied by the (scaled) learning rate.
    pub weight_decay: f64,
    /// Scale the learning rate by max(eps2, RMS(param)).
    pub multiply_by_parameter_scale: bool,
    /// `None`: factor every tensor of rank ≥ 2 over its last two dims
    /// (transformers). `Some(m)`: T5X's rule, factor over the two largest dims
    /// when the smaller of them is at least `m`, else keep V in full (T5X: 128).
    pub min_dim_size_to_factor: Option<usize>,
    /// `false`: keep every second moment in full, whatever its shape (the
    /// prompt-tuning code's prompts).
    pub factored: bool,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            eps1: 1e-30,
            eps2: 1e-3,
            clip_threshold: 1.0,
            decay_rate: -0.8,
            beta1: None,
            weight_decay: 0.0,
            multiply_by_parameter_scale: false,
            min_dim_size_to_factor: None,
            factored: true,
        }
    }
}

impl AdafactorConfig {
    /// T5X's Adafactor as it trains model weights: T5X's T5.1.1 model configs
    /// (t5x/examples/t5/t5_1_1/*.gin) set only `decay_rate=0.8, step_offset=0`
    /// and the standard logical factor rules (for 2-D weights T5X then falls
    /// back to its size heuristic), so the rest are `t5x.adafactor.Adafactor`'s
    /// defaults: `multiply_by_parameter_scale=True` (eps2 1e-3),
    /// `min_dim_size_to_factor=128`, `clipping_threshold=1.0`, `beta1=None`,
    /// `weight_decay_rate=None`, eps1 1e-30. promot writes the decay exponent
    /// with its sign: decay_rate -0.8.
    pub fn t5x(lr: f64) -> Self {
        Self {
            lr,
            multiply_by_parameter_scale: true,
            min_dim_size_to_factor: Some(128),
            decay_rate: -0.8,
            clip_threshold: 1.0,
            ..Self::default()
        }
    }

    /// The prompt-tuning code's Adafactor for the prompt it trains
    /// (prompt_tuning/configs/models/t5_1_1_prompt.gin): as [`Self::t5x`] but
    /// `multiply_by_parameter_scale=False`, so the step is lr itself, not
    /// relative to the prompt's RMS. With min_dim_size_to_factor 128 a prompt
    /// of fewer than 128 tokens is not factored. That config also sets
    /// `weight_decay_rate=1e-5`, which T5X applies as `x·(1 - 1e-5)` per step
    /// independent of the learning rate; promot's `weight_decay` is scaled by
    /// the learning rate, so it is left off here.
    pub fn prompt_tuning(lr: f64) -> Self {
        Self {
            multiply_by_parameter_scale: false,
            ..Self::t5x(lr)
        }
    }
}

/// Second-moment estimate of one parameter.
#[derive(Clone, Debug)]
enum SecondMoment {
    /// Row and column averages for factored tensors (see [`factored_dims`]):
    /// `row` is the shape without the column dim, `col` without the row dim.
    Factored { row: Tensor, col: Tensor },
    /// A full per-element average for tensors that are not factored.
    Full(Tensor),
}

#[derive(Clone, Debug)]
struct ParamState {
    step: u64,
    second: SecondMoment,
    momentum: Option<Tensor>,
}

/// The Adafactor optimiser; see the module docs for the update rule.
pub struct Adafactor {
    cfg: AdafactorConfig,
    state: BTreeMap<String, ParamState>,
    steps: u64,
    /// Take the one-pass CPU kernel (`cpu`) where it applies.
    fused: bool,
}

impl Adafactor {
    pub fn new(cfg: AdafactorConfig) -> Result<Self> {
        check_lr(cfg.lr)?;
        if !(cfg.decay_rate.is_finite() && cfg.decay_rate < 0.0) {
            return Err(Error::msg(format!(
                "adafactor decay_rate must be negative, got {}",
                cfg.decay_rate
            )));
        }
        if !(cfg.clip_threshold.is_finite() && cfg.clip_threshold > 0.0) {
            return Err(Error::msg(format!(
                "adafactor clip_threshold must be > 0, got {}",
                cfg.clip_threshold
            )));
        }
        if !(cfg.eps1.is_finite() && cfg.eps1 >= 0.0 && cfg.eps2.is_finite() && cfg.eps2 >= 0.0) {
            return Err(Error::msg(format!(
                "adafactor eps1/eps2 must be >= 0, got {}/{}",
                cfg.eps1, cfg.eps2
            )));
        }
        if let Some(b1) = cfg.beta1 {
            check_range("adafactor beta1", b1, 0.0, 1.0)?;
        }
        check_range("adafactor weight_decay", cfg.weight_decay, 0.0, f64::INFINITY)?;
        Ok(Self {
            cfg,
            state: BTreeMap::new(),
            steps: 0,
            fused: true,
        })
    }

    /// `false` runs the composed rule everywhere: the reference the one-pass
    /// CPU kernel is tested against (tests/optim.rs).
    pub fn with_fused_kernel(mut self, on: bool) -> Self {
        self.fused = on;
        self
    }

    pub fn config(&self) -> &AdafactorConfig {
        &self.cfg
    }

    fn update_one(&mut self, p: &Param, x: Tensor, g: Tensor) -> Result<()> {
        let cfg = &self.cfg;
        let dims = g.dims();
        let factored = if cfg.factored {
            factored_dims(dims, cfg.min_dim_size_to_factor)
        } else {
            None
        };
        let st = match self.state.remove(p.name()) {
            Some(st) => fit_state(p.name(), st, &g, factored)?,
            None => {
                let second = match factored {
                    Some((r, c)) => SecondMoment::Factored {
                        row: Tensor::zeros(without(dims, c), g.dtype(), g.device())?,
                        col: Tensor::zeros(without(dims, r), g.dtype(), g.device())?,
                    },
                    None => SecondMoment::Full(g.zeros_like()?),
                };
                let momentum = if cfg.beta1.is_some() {
                    Some(g.zeros_like()?)
                } else {
                    None
                };
                ParamState {
                    step: 0,
                    second,
                    momentum,
                }
            }
        };
        let t = st.step + 1;
        let beta2t = 1.0 - (t as f64).powf(cfg.decay_rate);
        if self.fused {
            if let Some((value, second)) = cpu::update(cfg, beta2t, &x, &g, &st.second, factored)? {
                return self.store(p, &value, t, second, st.momentum);
            }
        }
        let g2 = (g.sqr()? + cfg.eps1)?;

        // fit_state (or the fresh state above) made the state's kind match `factored`.
        let (second, inv_sqrt_v) = match (st.second, factored) {
            (SecondMoment::Factored { row, col }, Some((r, c))) => {
                let row = ((row * beta2t)? + (g2.mean(c)? * (1.0 - beta2t))?)?;
                let col = ((col * beta2t)? + (g2.mean(r)? * (1.0 - beta2t))?)?;
                // The row dim's index within `row`, which lacks the column dim.
                let r_in_row = if r > c { r - 1 } else { r };
                let row_factor = row
                    .broadcast_div(&row.mean_keepdim(r_in_row)?)?
                    .sqrt()?
                    .recip()?
                    .unsqueeze(c)?;
                let col_factor = col.sqrt()?.recip()?.unsqueeze(r)?;
                let inv = row_factor.broadcast_mul(&col_factor)?;
                (SecondMoment::Factored { row, col }, inv)
            }
            (SecondMoment::Factored { .. }, None) => {
                return Err(Error::msg(format!(
                    "adafactor: factored state for unfactored parameter {}",
                    p.name()
                )))
            }
            (SecondMoment::Full(v), _) => {
                let v = ((v * beta2t)? + (g2 * (1.0 - beta2t))?)?;
                let inv = v.sqrt()?.recip()?;
                (SecondMoment::Full(v), inv)
            }
        };
        let u = inv_sqrt_v.mul(&g)?;
        // Clip on the device (no host sync): divide by max(1, RMS(u)/threshold).
        let clip = (rms(&u)? / cfg.clip_threshold)?.maximum(1.0)?;
        let u = u.broadcast_div(&clip)?;

        // α may depend on the parameter itself; keep it as a 0-dim tensor then.
        let (u, x) = if cfg.multiply_by_parameter_scale {
            let alpha = (rms(&x)?.maximum(cfg.eps2)? * cfg.lr)?;
            let u = u.broadcast_mul(&alpha)?;
            let x = if cfg.weight_decay != 0.0 {
                x.broadcast_mul(&alpha.affine(-cfg.weight_decay, 1.0)?)?
            } else {
                x
            };
            (u, x)
        } else {
            let u = (u * cfg.lr)?;
            let x = if cfg.weight_decay != 0.0 {
                (x * (1.0 - cfg.weight_decay * cfg.lr))?
            } else {
                x
            };
            (u, x)
        };
        let (u, momentum) = match (cfg.beta1, st.momentum) {
            (Some(b1), Some(m)) => {
                let m = ((m * b1)? + (u * (1.0 - b1))?)?;
                (m.clone(), Some(m))
            }
            (_, m) => (u, m),
        };
        self.store(p, &(x - u)?, t, second, momentum)
    }

    /// Write the new value back and keep the parameter's state after step `t`.
    fn store(
        &mut self,
        p: &Param,
        value: &Tensor,
        t: u64,
        second: SecondMoment,
        momentum: Option<Tensor>,
    ) -> Result<()> {
        write_back(p, value)?;
        let state = ParamState {
            step: t,
            second,
            momentum,
        };
        self.state.insert(p.name().to_string(), state);
        Ok(())
    }
}

/// The (row, column) dims a tensor of shape `dims` is factored over, or `None`
/// when its second moment is kept in full; see the module docs.
fn factored_dims(dims: &[usize], min_dim_size_to_factor: Option<usize>) -> Option<(usize, usize)> {
    let n = dims.len();
    if n < 2 {
        return None;
    }
    let Some(min) = min_dim_size_to_factor else {
        return Some((n - 2, n - 1));
    };
    // Stable ascending sort of the dims by size: ties keep their order, so of
    // two equal sizes the later dim sorts last (numpy's argsort on a short shape).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| dims[i]);
    let (r, c) = (order[n - 2], order[n - 1]);
    (dims[r] >= min).then_some((r, c))
}

/// `dims` without dim `d`.
fn without(dims: &[usize], d: usize) -> Vec<usize> {
    [&dims[..d], &dims[d + 1..]].concat()
}

/// Check that (possibly loaded) state matches the parameter's shape and the
/// factoring the config gives it, and put it on the gradient's device.
fn fit_state(name: &str, st: ParamState, g: &Tensor, factored: Option<(usize, usize)>) -> Result<ParamState> {
    let dims = g.dims();
    let dev = g.device();
    let second = match (st.second, factored) {
        (SecondMoment::Factored { row, col }, Some((r, c))) => SecondMoment::Factored {
            row: state_tensor(&row, dev, &without(dims, c), &format!("adafactor.vr/{name}"))?,
            col: state_tensor(&col, dev, &without(dims, r), &format!("adafactor.vc/{name}"))?,
        },
        (SecondMoment::Full(v), None) => {
            SecondMoment::Full(state_tensor(&v, dev, dims, &format!("adafactor.v/{name}"))?)
        }
        (SecondMoment::Factored { .. }, None) => {
            return Err(Error::msg(format!(
                "adafactor state for {name} is factored (vr, vc), but this config keeps the second moment \
                 of a parameter of shape {dims:?} in full (min_dim_size_to_factor)"
            )))
        }
        (SecondMoment::Full(_), Some(_)) => {
            return Err(Error::msg(format!(
                "adafactor state for {name} is a full second moment (v), but this config factors \
                 a parameter of shape {dims:?} (min_dim_size_to_factor)"
            )))
        }
    };
    let momentum = match st.momentum {
        Some(m) => Some(state_tensor(&m, dev, dims, &format!("adafactor.m/{name}"))?),
        None => None,
    };
    Ok(ParamState {
        step: st.step,
        second,
        momentum,
    })
}

fn rms(t: &Tensor) -> Result<Tensor> {
    Ok(t.sqr()?.mean_all()?.sqrt()?)
}

impl super::Optimizer for Adafactor {
    fn update_param(&mut self, p: &Param, value: Tensor, grad: Tensor) -> Result<()> {
        self.update_one(p, value, grad)
    }

    fn count_step(&mut self) {
        self.steps += 1;
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn name(&self) -> &'static str {
        "adafactor"
    }

    fn state(&self) -> Result<(BTreeMap<String, Tensor>, u64)> {
        let mut out = BTreeMap::new();
        for (name, st) in &self.state {
            out.insert(format!("adafactor.step/{name}"), step_tensor(st.step)?);
            match &st.second {
                SecondMoment::Factored { row, col } => {
                    out.insert(format!("adafactor.vr/{name}"), row.clone());
                    out.insert(format!("adafactor.vc/{name}"), col.clone());
                }
                SecondMoment::Full(v) => {
                    out.insert(format!("adafactor.v/{name}"), v.clone());
                }
            }
            if let Some(m) = &st.momentum {
                out.insert(format!("adafactor.m/{name}"), m.clone());
            }
        }
        Ok((out, self.steps))
    }

    fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        // Collect the slots per parameter first, then check each is complete.
        let mut slots: BTreeMap<&str, BTreeMap<&str, &Tensor>> = BTreeMap::new();
        for (key, t) in tensors {
            let (slot, name) = split_state_key("adafactor", key)?;
            if !matches!(slot, "step" | "vr" | "vc" | "v" | "m") {
                return Err(Error::msg(format!("unknown adafactor state slot in '{key}'")));
            }
            slots.entry(name).or_default().insert(slot, t);
        }
        let mut state = BTreeMap::new();
        for (name, s) in slots {
            let key = |slot: &str| format!("adafactor.{slot}/{name}");
            let step_t = s
                .get("step")
                .ok_or_else(|| Error::msg(format!("missing {}", key("step"))))?;
            let pstep = step_from_tensor(step_t, &key("step"))?;
            let second = match (s.get("vr"), s.get("vc"), s.get("v")) {
                (Some(r), Some(c), None) => {
                    let (r, c) = (*r, *c);
                    // Each lacks one dim of the parameter; the exact shapes are
                    // checked against the parameter at its next step.
                    if r.rank() < 1 || c.rank() != r.rank() {
                        return Err(Error::msg(format!(
                            "adafactor state for {name}: row {:?} and column {:?} shapes do not fit together",
                            r.dims(),
                            c.dims()
                        )));
                    }
                    SecondMoment::Factored {
                        row: state_tensor(r, r.device(), r.dims(), &key("vr"))?,
                        col: state_tensor(c, c.device(), c.dims(), &key("vc"))?,
                    }
                }
                (None, None, Some(v)) => SecondMoment::Full(state_tensor(v, v.device(), v.dims(), &key("v"))?),
                _ => {
                    return Err(Error::msg(format!(
                        "adafactor state for {name}: need either vr and vc, or v alone"
                    )))
                }
            };
            let momentum = match (self.cfg.beta1, s.get("m")) {
                (Some(_), Some(m)) => Some(state_tensor(m, m.device(), m.dims(), &key("m"))?),
                (Some(_), None) => return Err(Error::msg(format!("missing {} (beta1 is set)", key("m")))),
                (None, Some(_)) => return Err(Error::msg(format!("unexpected {} (beta1 is not set)", key("m")))),
                (None, None) => None,
            };
            state.insert(
                name.to_string(),
                ParamState {
                    step: pstep,
                    second,
                    momentum,
                },
            );
        }
        self.state = state;
        self.steps = step;
        Ok(())
    }
}
