//! Nested progress in scripts: a script opens a level for its whole run and
//! for each method, with a total in whatever units it can weigh (methods,
//! training steps), and advances it; `train` and `evaluate` draw their own
//! lines inside the innermost open level (see [crate::train::progress]).
//!
//! ```text
//! progress_begin("reproduce", 6);          // 6 methods
//! for m in methods {
//!     progress_begin(m.name);              // no total: elapsed time only
//!     ... train(...) ... evaluate(...) ...
//!     progress_end();
//!     progress_advance(1);                 // the run's ETA from here on
//! }
//! progress_end();
//! ```

use rhai::{Engine, INT};

use super::model::usize_arg;
use super::tensor::reg_volatile;
use super::RResult;
use crate::train::progress;

pub fn register(engine: &mut Engine) {
    reg_volatile(
        engine,
        "progress_begin",
        &["label: &str", "total: int", "()"],
        "Open a progress level (a run, a method) of `total` units inside the open ones; its line shows an ETA.",
        |label: &str, total: INT| -> RResult<()> {
            let total = usize_arg("progress_begin: total", total)? as u64;
            progress::begin(label, Some(total));
            Ok(())
        },
    );
    reg_volatile(
        engine,
        "progress_begin",
        &["label: &str", "()"],
        "Open a progress level without a known total (its line shows the time spent).",
        |label: &str| {
            progress::begin(label, None);
        },
    );
    reg_volatile(
        engine,
        "progress_advance",
        &["units: int", "()"],
        "Mark `units` more of the innermost progress level done.",
        |units: INT| -> RResult<()> {
            progress::advance(usize_arg("progress_advance: units", units)? as u64);
            Ok(())
        },
    );
    reg_volatile(
        engine,
        "progress_advance",
        &["()"],
        "Mark one more unit of the innermost progress level done.",
        || progress::advance(1),
    );
    reg_volatile(
        engine,
        "progress_skip",
        &["units: int", "()"],
        "Mark `units` of the innermost progress level as found done (by an earlier run): they move it but not its rate.",
        |units: INT| -> RResult<()> {
            progress::skip(usize_arg("progress_skip: units", units)? as u64);
            Ok(())
        },
    );
    reg_volatile(
        engine,
        "progress_end",
        &["bool"],
        "Close the innermost progress level; false when none was open.",
        progress::end,
    );
}
