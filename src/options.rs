//! Option structs as scripts see them. Each function's options are one serde
//! struct in the library (`TrainConfig`, `EvalOptions`, `GenerateOptions`):
//! its fields are the option names, its `Default` the defaults, and serde's
//! `deny_unknown_fields` turns a typo into an error. This module holds the
//! small helpers those structs share: numbers that accept ints and floats
//! alike (scripts write `lr: 1` as readily as `lr: 1.0`), one item or a list
//! (`shots: 1` or `[1, 4]`), and listing a
//! struct's options with their defaults for `help()`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// A number written as an int or a float.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn value(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// `deserialize_with` for an `f64` option that may be written as an int.
pub fn number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Number::deserialize(d).map(Number::value)
}

/// `deserialize_with` for an `Option<f64>` option that may be written as an int.
pub fn opt_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    Option::<Number>::deserialize(d).map(|n| n.map(Number::value))
}

/// A value written as one item or a list of them (`shots: 1` or `shots: [1, 4]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> From<OneOrMany<T>> for Vec<T> {
    fn from(v: OneOrMany<T>) -> Self {
        match v {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `deserialize_with` for a `Vec<T>` option that may be written as one item.
pub fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Vec<T>, D::Error> {
    OneOrMany::deserialize(d).map(Vec::from)
}

/// `deserialize_with` for an `Option<Vec<T>>` option that may be written as one item.
pub fn opt_one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<T>>, D::Error> {
    Option::<OneOrMany<T>>::deserialize(d).map(|v| v.map(Vec::from))
}

/// Every option of a struct with its default, as `name = value` lines, from
/// the struct's `Default` (so `help("train")` cannot drift from the code).
/// `extra` names options that are not data (a prompt, a callback), with a
/// description each.
pub fn describe<T: Default + Serialize>(extra: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
    let value = serde_json::to_value(T::default()).map_err(|e| Error::msg(format!("options: {e}")))?;
    let obj = value.as_object().ok_or_else(|| Error::msg("options: not a struct"))?;
    let mut out: Vec<(String, String)> = obj
        .iter()
        .map(|(k, v)| (k.clone(), if v.is_null() { "none".to_string() } else { v.to_string() }))
        .collect();
    out.extend(extra.iter().map(|(k, d)| (k.to_string(), d.to_string())));
    out.sort();
    Ok(out)
}

/// The option names of a struct (and `extra`), for unknown-key messages.
pub fn names<T: Default + Serialize>(extra: &[(&str, &str)]) -> Vec<String> {
    describe::<T>(extra)
        .map(|rows| rows.into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default()
}
