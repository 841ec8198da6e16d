//! AdamW (Loshchilov & Hutter, 2019), matching `torch.optim.AdamW`.
//!
//! One step for a parameter `x` with gradient `g` and its own step count `t`:
//!
//! ```text
//! x = x · (1 - lr·weight_decay)                    (decoupled weight decay)
//! m = beta1·m + (1 - beta1)·g
//! v = beta2·v + (1 - beta2)·g²
//! x = x - (lr / (1 - beta1^t)) · m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//! All arithmetic is f32.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{check_lr, check_range, split_state_key, state_tensor, step_from_tensor, step_tensor, write_back};
use crate::error::{Error, Result};
use crate::params::Param;

/// AdamW hyper-parameters; `Default` is torch's (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

#[derive(Clone, Debug)]
struct ParamState {
    step: u64,
    m: Tensor,
    v: Tensor,
}

/// The AdamW optimiser; see the module docs for the update rule.
pub struct AdamW {
    cfg: AdamWConfig,
    state: BTreeMap<String, ParamState>,
    steps: u64,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Result<Self> {
        check_lr(cfg.lr)?;
        check_range("adamw beta1", cfg.beta1, 0.0, 1.0)?;
        check_range("adamw beta2", cfg.beta2, 0.0, 1.0)?;
        check_range("adamw eps", cfg.eps, 0.0, f64::INFINITY)?;
        check_range("adamw weight_decay", cfg.weight_decay, 0.0, f64::INFINITY)?;
        Ok(Self {
            cfg,
            state: BTreeMap::new(),
            steps: 0,
        })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    fn update_one(&mut self, p: &Param, x: Tensor, g: Tensor) -> Result<()> {
        let cfg = &self.cfg;
        let name = p.name();
        let (step, m, v) = match self.state.remove(name) {
            Some(st) => (
                st.step,
                state_tensor(&st.m, g.device(), g.dims(), &format!("adamw.m/{name}"))?,
                state_tensor(&st.v, g.device(), g.dims(), &format!("adamw.v/{name}"))?,
            ),
            None => (0, g.zeros_like()?, g.zeros_like()?),
        };
        let t = step + 1;
        let x = if cfg.weight_decay != 0.0 {
            (x * (1.0 - cfg.lr * cfg.weight_decay))?
        } else {
            x
        };
        let m = ((m * cfg.beta1)? + (&g * (1.0 - cfg.beta1))?)?;
        let v = ((v * cfg.beta2)? + (g.sqr()? * (1.0 - cfg.beta2))?)?;
        let bias1 = 1.0 - cfg.beta1.powf(t as f64);
        let bias2 = 1.0 - cfg.beta2.powf(t as f64);
        let denom = ((v.sqrt()? / bias2.sqrt())? + cfg.eps)?;
        let update = ((&m / &denom)? * (cfg.lr / bias1))?;
        write_back(p, &(x - update)?)?;
        self.state.insert(name.to_string(), ParamState { step: t, m, v });
        Ok(())
    }
}

impl super::Optimizer for AdamW {
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
        "adamw"
    }

    fn state(&self) -> Result<(BTreeMap<String, Tensor>, u64)> {
        let mut out = BTreeMap::new();
        for (name, st) in &self.state {
            out.insert(format!("adamw.step/{name}"), step_tensor(st.step)?);
            out.insert(format!("adamw.m/{name}"), st.m.clone());
            out.insert(format!("adamw.v/{name}"), st.v.clone());
        }
        Ok((out, self.steps))
    }

    fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        let mut slots: BTreeMap<&str, BTreeMap<&str, &Tensor>> = BTreeMap::new();
        for (key, t) in tensors {
            let (slot, name) = split_state_key("adamw", key)?;
            if !matches!(slot, "step" | "m" | "v") {
                return Err(Error::msg(format!("unknown adamw state slot in '{key}'")));
            }
            slots.entry(name).or_default().insert(slot, t);
        }
        let mut state = BTreeMap::new();
        for (name, s) in slots {
            let get = |slot: &str| {
                s.get(slot)
                    .copied()
                    .ok_or_else(|| Error::msg(format!("missing optimizer state adamw.{slot}/{name}")))
            };
            let (step_t, m, v) = (get("step")?, get("m")?, get("v")?);
            if m.dims() != v.dims() {
                return Err(Error::msg(format!(
                    "adamw state for {name}: m {:?} and v {:?} differ in shape",
                    m.dims(),
                    v.dims()
                )));
            }
            let st = ParamState {
                step: step_from_tensor(step_t, &format!("adamw.step/{name}"))?,
                m: state_tensor(m, m.device(), m.dims(), &format!("adamw.m/{name}"))?,
                v: state_tensor(v, v.device(), v.dims(), &format!("adamw.v/{name}"))?,
            };
            state.insert(name.to_string(), st);
        }
        self.state = state;
        self.steps = step;
        Ok(())
    }
}
