//! promot: a research environment for ProMoT (prompt tuning with model tuning),
//! the two-stage fine-tuning method that keeps a language model's in-context
//! learning. The library is the product; the Rhai scripting layer (`script`)
//! and the `promot` binary sit on top of it.

pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod folder_lock;
pub mod fsio;
pub mod home;
pub mod interrupt;
pub mod kernels;
pub mod metrics;
pub mod model;
/// Tokenizers live with the models whose vocabularies they read (`model::tokenizer`).
pub use model::tokenizer;
pub mod optim;
pub mod options;
pub mod params;
pub mod plot;
pub mod plot_spec;
pub mod prompt;
pub mod provenance;
pub mod script;
pub mod seed;
pub mod session;
pub mod text;
pub mod toy;
pub mod train;

pub use error::{Error, Result};
