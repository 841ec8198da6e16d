//! Stochastic gradient descent with optional momentum, matching `torch.optim.SGD`
//! (dampening 0).
//!
//! One step for a parameter `x` with gradient `g`:
//!
//! ```text
//! g = g + weight_decay·x                           (L2 penalty, coupled; off by default)
//! b = g on the first step, else momentum·b + g     (only when momentum > 0)
//! d = g + momentum·b if nesterov, else b           (d = g without momentum)
//! x = x - lr·d
//! ```
//! All arithmetic is f32.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{check_lr, check_range, split_state_key, state_tensor, write_back};
use crate::error::{Error, Result};
use crate::params::Param;

/// SGD hyper-parameters; `Default` is plain SGD with lr 1e-2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    pub lr: f64,
    /// 0 disables momentum (and its state).
    pub momentum: f64,
    /// Coupled L2 weight decay added to the gradient.
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// The SGD optimiser; see the module docs for the update rule.
pub struct Sgd {
    cfg: SgdConfig,
    /// Momentum buffers by parameter name (empty without momentum).
    buffers: BTreeMap<String, Tensor>,
    steps: u64,
}

impl Sgd {
    pub fn new(cfg: SgdConfig) -> Result<Self> {
        check_lr(cfg.lr)?;
        check_range("sgd momentum", cfg.momentum, 0.0, 1.0)?;
        check_range("sgd weight_decay", cfg.weight_decay, 0.0, f64::INFINITY)?;
        if cfg.nesterov && cfg.momentum == 0.0 {
            return Err(Error::msg("sgd: nesterov needs a momentum > 0"));
        }
        Ok(Self {
            cfg,
            buffers: BTreeMap::new(),
            steps: 0,
        })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    fn update_one(&mut self, p: &Param, x: Tensor, g: Tensor) -> Result<()> {
        let cfg = &self.cfg;
        let g = if cfg.weight_decay != 0.0 {
            (g + (&x * cfg.weight_decay)?)?
        } else {
            g
        };
        let direction = if cfg.momentum != 0.0 {
            let name = p.name();
            let buf = match self.buffers.remove(name) {
                Some(b) => {
                    let b = state_tensor(&b, g.device(), g.dims(), &format!("sgd.momentum/{name}"))?;
                    ((b * cfg.momentum)? + &g)?
                }
                None => g.clone(),
            };
            let d = if cfg.nesterov {
                (&g + (&buf * cfg.momentum)?)?
            } else {
                buf.clone()
            };
            self.buffers.insert(name.to_string(), buf);
            d
        } else {
            g
        };
        write_back(p, &(x - (direction * cfg.lr)?)?)
    }
}

impl super::Optimizer for Sgd {
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
        "sgd"
    }

    fn state(&self) -> Result<(BTreeMap<String, Tensor>, u64)> {
        let out = self
            .buffers
            .iter()
            .map(|(name, b)| (format!("sgd.momentum/{name}"), b.clone()))
            .collect();
        Ok((out, self.steps))
    }

    fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        let mut buffers = BTreeMap::new();
        for (key, t) in tensors {
            let (slot, name) = split_state_key("sgd", key)?;
            if slot != "momentum" {
                return Err(Error::msg(format!("unknown sgd state slot in '{key}'")));
            }
            if self.cfg.momentum == 0.0 {
                return Err(Error::msg(format!(
                    "unexpected optimizer state '{key}': this sgd has no momentum"
                )));
            }
            buffers.insert(name.to_string(), state_tensor(t, t.device(), t.dims(), key)?);
        }
        self.buffers = buffers;
        self.steps = step;
        Ok(())
    }
}
