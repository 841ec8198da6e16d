//! Script option maps into the library's option structs, with rhai::serde.
//! The struct (e.g. `train::TrainConfig`) is the one place an option is
//! declared and defaulted; this only binds it: keys that are not data (a
//! prompt, a callback) are taken out first, and serde's unknown-field error
//! becomes one line naming the known keys, and a bad value one line naming its key.

use rhai::{Dynamic, Map};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{to_rhai, RResult};
use crate::options;

/// Parse `map` into `T`, ignoring the keys in `extra` (the caller reads them).
pub fn parse<T: DeserializeOwned + Default + Serialize>(what: &str, map: &Map, extra: &[(&str, &str)]) -> RResult<T> {
    let mut data = map.clone();
    for (key, _) in extra {
        data.remove(*key);
    }
    rhai::serde::from_dynamic(&Dynamic::from(data.clone())).map_err(|e| {
        let msg = e.to_string();
        match unknown_field(&msg) {
            Some(key) => to_rhai(format!(
                "{what}: unknown option '{key}' (known: {})",
                options::names::<T>(extra).join(", ")
            )),
            None => {
                let reason = msg.strip_prefix("Syntax error: ").unwrap_or(&msg);
                match culprit::<T>(&data) {
                    Some(key) => to_rhai(format!("{what}: option '{key}': {reason}")),
                    None => to_rhai(format!("{what}: bad option: {reason}")),
                }
            }
        }
    })
}

/// The first key of `data` that fails to parse on its own (the others at
/// their defaults): the option a type error is about.
fn culprit<T: DeserializeOwned>(data: &Map) -> Option<String> {
    data.iter().find_map(|(key, value)| {
        let mut one = Map::new();
        one.insert(key.clone(), value.clone());
        rhai::serde::from_dynamic::<T>(&Dynamic::from(one))
            .is_err()
            .then(|| key.to_string())
    })
}

/// The field serde's "unknown field `x`, expected ..." message names.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.split("unknown field `").nth(1)?;
    rest.split('`').next()
}

/// A function's doc line followed by its options and their defaults, for `help("name")`.
pub fn doc_with_options<T: Default + Serialize>(doc: &str, extra: &[(&str, &str)]) -> String {
    let rows = options::describe::<T>(extra).unwrap_or_default();
    let mut out = format!("{doc}\nOptions (default):");
    for (key, default) in rows {
        out.push_str(&format!("\n  {key}: {default}"));
    }
    out
}
