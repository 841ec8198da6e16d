//! One parameter group's optimiser as one typed literal: the optimiser's
//! name, its learning rate and schedule, and that optimiser's own knobs (the
//! fields of its config), as nanoGPT's `configure_optimizers` gives each group
//! its own settings. In a script:
//!
//! ```text
//! weights_optimizer: #{ optimizer: "adafactor", lr: 1e-3, multiply_by_parameter_scale: true, min_dim_size_to_factor: 128 }
//! prompt_optimizer: #{ optimizer: "adafactor", lr: 0.3, factored: false }
//! ```
//!
//! `optimizer` is "adafactor" (default), "adamw" or "sgd"; `schedule` is
//! "constant" (default), "linear_warmup", "linear_warmup_decay" or "rsqrt",
//! with `warmup` steps; every other key is a field of that optimiser's config
//! ([`AdafactorConfig`], [`AdamWConfig`], [`SgdConfig`]), and a key it does
//! not have is an error naming the ones it has.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Adafactor, AdafactorConfig, AdamW, AdamWConfig, Optimizer, Schedule, Sgd, SgdConfig};
use crate::error::{Error, Result};

/// An optimiser with its own settings.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerConfig {
    Adafactor(AdafactorConfig),
    AdamW(AdamWConfig),
    Sgd(SgdConfig),
}

impl OptimizerConfig {
    pub const NAMES: [&'static str; 3] = ["adafactor", "adamw", "sgd"];

    /// The optimiser called `name` at its defaults, with learning rate `lr`.
    pub fn named(name: &str, lr: f64) -> Result<Self> {
        let mut cfg = Self::from_knobs(name, Map::new())?;
        cfg.set_lr(lr);
        Ok(cfg)
    }

    /// The optimiser called `name` with `knobs` (its config's fields) over its defaults.
    fn from_knobs(name: &str, knobs: Map<String, Value>) -> Result<Self> {
        let keys: Vec<String> = knobs.keys().cloned().collect();
        let value = Value::Object(knobs);
        let bad = |e: serde_json::Error| Self::knob_error(name, &keys, e);
        Ok(match name {
            "adafactor" => Self::Adafactor(serde_json::from_value(value).map_err(bad)?),
            "adamw" => Self::AdamW(serde_json::from_value(value).map_err(bad)?),
            "sgd" => Self::Sgd(serde_json::from_value(value).map_err(bad)?),
            _ => {
                return Err(Error::msg(format!(
                    "unknown optimizer '{name}' (expected adafactor, adamw or sgd)"
                )))
            }
        })
    }

    /// A literal's key the optimiser does not have is named with the ones it
    /// has (not as serde's "unknown field", which the script layer would read
    /// as an unknown option of `train` itself); other errors say which optimiser.
    fn knob_error(name: &str, keys: &[String], e: serde_json::Error) -> Error {
        let known = match name {
            "adafactor" => serde_json::to_value(AdafactorConfig::default()),
            "adamw" => serde_json::to_value(AdamWConfig::default()),
            _ => serde_json::to_value(SgdConfig::default()),
        };
        let known: Vec<String> = match known {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        match keys.iter().find(|k| !known.contains(k)) {
            Some(key) => Error::msg(format!(
                "optimizer '{name}' has no option '{key}' (it has {})",
                known.join(", ")
            )),
            None => Error::msg(format!("optimizer '{name}': {e}")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Adafactor(_) => "adafactor",
            Self::AdamW(_) => "adamw",
            Self::Sgd(_) => "sgd",
        }
    }

    pub fn lr(&self) -> f64 {
        match self {
            Self::Adafactor(c) => c.lr,
            Self::AdamW(c) => c.lr,
            Self::Sgd(c) => c.lr,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Self::Adafactor(c) => c.lr = lr,
            Self::AdamW(c) => c.lr = lr,
            Self::Sgd(c) => c.lr = lr,
        }
    }

    /// The config's fields by name, lr included.
    fn knobs(&self) -> Map<String, Value> {
        let value = match self {
            Self::Adafactor(c) => serde_json::to_value(c),
            Self::AdamW(c) => serde_json::to_value(c),
            Self::Sgd(c) => serde_json::to_value(c),
        };
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The same optimiser with one knob changed; a knob it does not have is
    /// an error naming the ones it has.
    pub fn with(&self, key: &str, value: Value) -> Result<Self> {
        let mut knobs = self.knobs();
        if !knobs.contains_key(key) {
            let known: Vec<_> = knobs.keys().map(String::as_str).collect();
            return Err(Error::msg(format!(
                "optimizer '{}' has no option '{key}' (it has {})",
                self.name(),
                known.join(", ")
            )));
        }
        knobs.insert(key.to_string(), value);
        Self::from_knobs(self.name(), knobs)
    }

    /// The optimiser these settings describe, checked.
    pub fn build(&self) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            Self::Adafactor(c) => Box::new(Adafactor::new(c.clone())?),
            Self::AdamW(c) => Box::new(AdamW::new(c.clone())?),
            Self::Sgd(c) => Box::new(Sgd::new(c.clone())?),
        })
    }
}

/// The optimiser called `name` ("adafactor", "adamw", "sgd") with its defaults.
pub fn by_name(name: &str, lr: f64) -> Result<Box<dyn Optimizer>> {
    OptimizerConfig::named(name, lr)?.build()
}

/// One parameter group's settings: its optimiser (with lr) and its schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSettings {
    pub optimizer: OptimizerConfig,
    /// constant, linear_warmup, linear_warmup_decay or rsqrt.
    pub schedule: String,
    /// Warm-up steps of the schedules that have one.
    pub warmup: u64,
}

impl GroupSettings {
    pub fn new(optimizer: OptimizerConfig) -> Self {
        Self {
            optimizer,
            schedule: "constant".into(),
            warmup: 0,
        }
    }

    /// transformers' Adafactor (every matrix factored, unscaled steps) at `lr`.
    pub fn adafactor(lr: f64) -> Self {
        Self::new(OptimizerConfig::Adafactor(AdafactorConfig {
            lr,
            ..AdafactorConfig::default()
        }))
    }

    pub fn lr(&self) -> f64 {
        self.optimizer.lr()
    }

    /// The schedule over a run of `total_steps`, checked.
    pub fn schedule(&self, total_steps: u64) -> Result<Schedule> {
        Schedule::from_name(&self.schedule, self.warmup, total_steps)
    }

    /// Another optimiser for this group, at its defaults with this group's lr
    /// (nothing changes when it is the same optimiser).
    pub fn switch_to(&mut self, name: &str) -> Result<()> {
        if self.optimizer.name() != name {
            self.optimizer = OptimizerConfig::named(name, self.lr())?;
        }
        Ok(())
    }

    /// The literal's keys, in one map.
    fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("optimizer".into(), self.optimizer.name().into());
        map.insert("schedule".into(), self.schedule.clone().into());
        map.insert("warmup".into(), self.warmup.into());
        map.extend(self.optimizer.knobs());
        map
    }

    /// From the literal's keys: `optimizer`, `schedule` and `warmup` here, the
    /// rest the optimiser's own.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self> {
        let name = match map.remove("optimizer") {
            None | Some(Value::Null) => "adafactor".to_string(),
            Some(Value::String(s)) => s,
            Some(other) => return Err(Error::msg(format!("'optimizer' must be a name, got {other}"))),
        };
        let schedule = match map.remove("schedule") {
            None | Some(Value::Null) => "constant".to_string(),
            Some(Value::String(s)) => s,
            Some(other) => return Err(Error::msg(format!("'schedule' must be a name, got {other}"))),
        };
        let warmup = match map.remove("warmup") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| Error::msg(format!("'warmup' must be a whole number of steps, got {v}")))?,
        };
        // A null knob means "the optimiser's default".
        map.retain(|_, v| !v.is_null());
        let optimizer = OptimizerConfig::from_knobs(&name, map)?;
        Schedule::from_name(&schedule, 0, 1)?; // the name; the steps are checked when training starts
        Ok(Self {
            optimizer,
            schedule,
            warmup,
        })
    }
}

impl Serialize for GroupSettings {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for GroupSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(map) => Self::from_map(map).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected a map of optimizer settings (optimizer, lr, ...), got {other}"
            ))),
        }
    }
}
