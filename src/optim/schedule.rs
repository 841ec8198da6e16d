//! Learning-rate schedules: a pure function from (base lr, step) to the lr.
//!
//! `step` counts the updates already taken, so the first update uses `step = 0`.
//! Warmups ramp linearly as `(step + 1) / warmup`, so the first update already
//! moves and update number `warmup` (step `warmup - 1`) reaches the base lr.

use crate::error::{Error, Result};

/// How the learning rate changes over training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The base lr throughout (what the ProMoT paper uses).
    Constant,
    /// Linear ramp over `warmup_steps` updates, then constant.
    LinearWarmup { warmup_steps: u64 },
    /// Linear ramp over `warmup` updates, then linear decay reaching 0 at step `total`.
    LinearWarmupDecay { warmup: u64, total: u64 },
    /// The inverse square root schedule of the paper's pretraining: base / sqrt(max(step, warmup_steps)), flat during warmup.
    Rsqrt { warmup_steps: u64 },
}

impl Schedule {
    /// The learning rate for the update at `step` (0-based).
    pub fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => base_lr,
            Schedule::LinearWarmup { warmup_steps } => base_lr * warmup_fraction(step, warmup_steps),
            Schedule::LinearWarmupDecay { warmup, total } => {
                if step < warmup {
                    base_lr * warmup_fraction(step, warmup)
                } else {
                    // max(1, ..) keeps a degenerate total <= warmup from dividing by zero.
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    base_lr * (total.saturating_sub(step) as f64 / span).clamp(0.0, 1.0)
                }
            }
            // max(.., 1) so that step 0 without warmup gives base_lr, not infinity.
            Schedule::Rsqrt { warmup_steps } => base_lr / (step.max(warmup_steps).max(1) as f64).sqrt(),
        }
    }

    /// Build a schedule from its script name: "constant", "linear_warmup",
    /// "linear_warmup_decay" or "rsqrt". `warmup` and `total` are in updates;
    /// only the ones the schedule uses are read.
    pub fn from_name(name: &str, warmup: u64, total: u64) -> Result<Self> {
        let s = match name {
            "constant" => Schedule::Constant,
            "linear_warmup" => Schedule::LinearWarmup { warmup_steps: warmup },
            "linear_warmup_decay" => Schedule::LinearWarmupDecay { warmup, total },
            "rsqrt" => Schedule::Rsqrt { warmup_steps: warmup },
            _ => {
                return Err(Error::msg(format!(
                    "unknown schedule '{name}' (expected constant, linear_warmup, linear_warmup_decay or rsqrt)"
                )))
            }
        };
        s.validate()?;
        Ok(s)
    }

    /// Reject settings that make no sense (a decay that ends before warmup does).
    pub fn validate(&self) -> Result<()> {
        if let Schedule::LinearWarmupDecay { warmup, total } = *self {
            if total <= warmup {
                return Err(Error::msg(format!(
                    "linear_warmup_decay: total steps ({total}) must be larger than warmup steps ({warmup})"
                )));
            }
        }
        Ok(())
    }
}

/// min(1, (step + 1) / warmup); 1 when there is no warmup.
fn warmup_fraction(step: u64, warmup: u64) -> f64 {
    if step >= warmup {
        1.0
    } else {
        (step + 1) as f64 / warmup as f64
    }
}
