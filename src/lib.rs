//! promot: a research environment for ProMoT (prompt tuning with model tuning),
//! the two-stage fine-tuning method that keeps a language model's in-context
//! learning. The library is the product; the Rhai scripting layer (`script`)
//! and the `promot` binary sit on top of it.

pub mod error;
pub mod options;
pub mod seed;
pub mod params;
pub mod fsio;
pub mod interrupt;
pub mod device;
pub mod tokenizer;
pub mod text;
pub mod model;
pub mod prompt;
pub mod train;
pub mod eval;
pub mod plot;
pub mod optim;
pub mod metrics;
pub mod data;
pub mod toy;
pub mod script;

pub use error::{Error, Result};
