//! Script option maps into the library's option structs, with rhai::serde.
//! The struct (e.g. `train::TrainConfig`) is the one place an option is
//! declared and defaulted; this only binds it: keys that are not data (a
//! prompt, a callback) are taken out first, and serde's unknown-field error
//! becomes one line naming the known keys.

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
    rhai::serde::from_dynamic(&Dynamic::from(data)).map_err(|e| {
        let msg = e.to_string();
        match unknown_field(&msg) {
            Some(key) => to_rhai(format!(
                "{what}: unknown option '{key}' (known: {})",
                options::names::<T>(extra).join(", ")
            )),
            None => to_rhai(format!("{what}: bad option: {msg}")),
        }
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
