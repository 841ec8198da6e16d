//! Adafactor (Shazeer & Stern, 2018) as T5X and the prompt-tuning code train
//! with it, numerically the same as transformers'
//! `Adafactor(lr, scale_parameter=False, relative_step=False, warmup_init=False,
//! decay_rate=-0.8, clip_threshold=1.0, beta1=None, weight_decay=0.0)`.
//!
//! One step for a parameter `x` with gradient `g`, its own step count `t`
//! (1 on its first update) and learning rate `lr`:
//!
//! ```text
//! beta2_t = 1 - t^decay_rate                       (decay_rate = -0.8; 0 at t = 1)
//! G       = g² + eps1                              (eps1 = 1e-30, keeps rsqrt finite)
//! rank ≥ 2 (factored over the last two dims, rows r and columns c):
//!     R = beta2_t·R + (1 - beta2_t)·mean_c(G)      (one number per row)
//!     C = beta2_t·C + (1 - beta2_t)·mean_r(G)      (one number per column)
//!     V = (R / mean_r(R)) ⊗ C                      (rank-1 estimate of E[g²])
//! rank ≤ 1:
//!     V = beta2_t·V + (1 - beta2_t)·G
//! u  = g / sqrt(V)
//! u  = u / max(1, RMS(u) / clip_threshold)         (update clipping, threshold 1.0)
//! α  = lr · max(eps2, RMS(x))   if multiply_by_parameter_scale (eps2 = 1e-3), else lr
//! u  = α·u
//! m  = beta1·m + (1 - beta1)·u;  u = m             (only when beta1 is set)
//! x  = x - weight_decay·α·x - u                    (decoupled decay, off by default)
//! ```
//! RMS(a) = sqrt(mean(a²)); all arithmetic is f32.
//!
//! Unlike T5X's default, every tensor with two or more dims is factored (T5X
//! skips factoring when a dim is smaller than 128); this follows transformers.

use std::collections::BTreeMap;

use candle_core::{Tensor, D};

use super::{check_lr, check_range, split_state_key, state_tensor, step_from_tensor, step_tensor, write_back};
use crate::error::{Error, Result};
use crate::params::Param;

/// Adafactor hyper-parameters; `Default` is the T5X / paper setting with lr 1e-3.
#[derive(Clone, Debug, PartialEq)]
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
        }
    }
}

/// Second-moment estimate of one parameter.
#[derive(Clone, Debug)]
enum SecondMoment {
    /// Row and column averages for tensors of rank ≥ 2.
    Factored { row: Tensor, col: Tensor },
    /// A full per-element average for scalars and vectors.
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
        })
    }

    pub fn config(&self) -> &AdafactorConfig {
        &self.cfg
    }

    fn update_one(&mut self, p: &Param, x: Tensor, g: Tensor) -> Result<()> {
        let cfg = &self.cfg;
        let dims = g.dims().to_vec();
        let rank = dims.len();
        let st = match self.state.remove(p.name()) {
            Some(st) => fit_state(p.name(), st, &g)?,
            None => {
                let second = if rank >= 2 {
                    SecondMoment::Factored {
                        row: Tensor::zeros(&dims[..rank - 1], g.dtype(), g.device())?,
                        col: Tensor::zeros([&dims[..rank - 2], &dims[rank - 1..]].concat(), g.dtype(), g.device())?,
                    }
                } else {
                    SecondMoment::Full(g.zeros_like()?)
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
        let g2 = (g.sqr()? + cfg.eps1)?;

        let (second, inv_sqrt_v) = match st.second {
            SecondMoment::Factored { row, col } => {
                let row = ((row * beta2t)? + (g2.mean(D::Minus1)? * (1.0 - beta2t))?)?;
                let col = ((col * beta2t)? + (g2.mean(D::Minus2)? * (1.0 - beta2t))?)?;
                let row_factor = row
                    .broadcast_div(&row.mean_keepdim(D::Minus1)?)?
                    .sqrt()?
                    .recip()?
                    .unsqueeze(rank - 1)?;
                let col_factor = col.sqrt()?.recip()?.unsqueeze(rank - 2)?;
                let inv = row_factor.broadcast_mul(&col_factor)?;
                (SecondMoment::Factored { row, col }, inv)
            }
            SecondMoment::Full(v) => {
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
        write_back(p, &(x - u)?)?;
        self.state.insert(
            p.name().to_string(),
            ParamState {
                step: t,
                second,
                momentum,
            },
        );
        Ok(())
    }
}

/// Check that (possibly loaded) state matches the parameter's shape and kind,
/// and put it on the gradient's device.
fn fit_state(name: &str, st: ParamState, g: &Tensor) -> Result<ParamState> {
    let dims = g.dims();
    let rank = dims.len();
    let dev = g.device();
    let second = match st.second {
        SecondMoment::Factored { row, col } if rank >= 2 => {
            let col_dims = [&dims[..rank - 2], &dims[rank - 1..]].concat();
            SecondMoment::Factored {
                row: state_tensor(&row, dev, &dims[..rank - 1], &format!("adafactor.vr/{name}"))?,
                col: state_tensor(&col, dev, &col_dims, &format!("adafactor.vc/{name}"))?,
            }
        }
        SecondMoment::Full(v) if rank < 2 => SecondMoment::Full(state_tensor(&v, dev, dims, &format!("adafactor.v/{name}"))?),
        _ => {
            return Err(Error::msg(format!(
                "adafactor state for {name} does not match the parameter's shape {dims:?} (factored state is for rank >= 2)"
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
                    if r.rank() < 1 || c.rank() != r.rank() || r.dims()[..r.rank() - 1] != c.dims()[..c.rank() - 1] {
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
