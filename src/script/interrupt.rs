//! Ctrl-C handling shared by the REPL, scripts and long Rust-side loops.
//!
//! One process-wide flag: the Ctrl-C handler sets it, the Rhai engine checks it
//! between operations (so a running script stops with "interrupted"), and long
//! library loops such as training poll `interrupted()` and return
//! `Error::Interrupted`. The REPL clears the flag before each command.
//! A second Ctrl-C while the flag is still set ends the process, so a native
//! call that never polls cannot trap the user.

use std::sync::Once;

use rhai::{Dynamic, Engine};

pub use crate::interrupt::{clear_interrupt, interrupted, request_interrupt};

static HANDLER: Once = Once::new();

/// Install the process-wide Ctrl-C handler (once; later calls do nothing).
/// Failure to install (e.g. another handler exists) is ignored: scripts still
/// run, they just cannot be interrupted.
pub fn install_handler() {
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if request_interrupt() {
                // Second Ctrl-C before anyone noticed the first: give up.
                eprintln!("\ninterrupted twice, exiting");
                std::process::exit(130);
            }
        });
    });
}

/// Make `engine` stop a running script with an "interrupted" error when the
/// flag is raised. Cheap: one atomic load per Rhai operation.
pub fn install(engine: &mut Engine) {
    engine.on_progress(|_ops| {
        if interrupted() {
            Some(Dynamic::from("interrupted"))
        } else {
            None
        }
    });
}
