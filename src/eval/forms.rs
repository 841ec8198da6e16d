//! How evaluation tasks are written as data (script maps, JSON): the serde
//! forms of the fields of `EvalTask` and `EvalExample` whose written form is
//! not their Rust type. A task map (stdlib/tasks.rhai, `toy_task`):
//!
//! ```text
//! #{ name, metric: "accuracy" | "exact_match" | "bleu" | "rouge2",
//!    kind: "classification" | "generation", max_new_tokens,
//!    examples: [#{ input, target } or #{ fields, target }], pool: [...],
//!    pool_is_eval, template, caps: #{ field: tokens }, labels: [...],
//!    episodes: #{ "1": [...], "4": [...] } }
//! ```
//!
//! A `target` is one reference or an array of them.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{EvalExample, Metric};
use crate::data::postprocess::OutputKind;

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Metric::from_name(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `kind`: "classification" or "generation".
pub mod kind {
    use super::*;

    pub fn serialize<S: Serializer>(k: &OutputKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match k {
            OutputKind::Classification => "classification",
            OutputKind::Generation => "generation",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OutputKind, D::Error> {
        OutputKind::from_name(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    pub fn generation() -> OutputKind {
        OutputKind::Generation
    }
}

/// `target`: one reference (a string) or several (an array).
pub mod references {
    use super::*;

    pub fn serialize<S: Serializer>(r: &[String], s: S) -> Result<S::Ok, S::Error> {
        match r {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        crate::options::one_or_many(d)
    }
}

/// `caps`: a map from field name to a token count, applied in name order.
pub mod caps {
    use super::*;

    pub fn serialize<S: Serializer>(caps: &[(String, usize)], s: S) -> Result<S::Ok, S::Error> {
        caps.iter().cloned().collect::<BTreeMap<String, usize>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, usize)>, D::Error> {
        Ok(BTreeMap::<String, usize>::deserialize(d)?.into_iter().collect())
    }
}

/// `episodes`: a map from a shot count, written as a string ("1"), to its prompts.
pub mod episodes {
    use super::*;

    pub fn serialize<S: Serializer>(e: &BTreeMap<usize, Vec<EvalExample>>, s: S) -> Result<S::Ok, S::Error> {
        e.iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<String, &Vec<EvalExample>>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<usize, Vec<EvalExample>>, D::Error> {
        BTreeMap::<String, Vec<EvalExample>>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                let shots = k
                    .parse()
                    .map_err(|_| D::Error::custom(format!("episodes key '{k}' is not a shot count")))?;
                Ok((shots, v))
            })
            .collect()
    }
}

pub fn default_task_name() -> String {
    "task".into()
}

pub fn default_max_new_tokens() -> usize {
    32
}
