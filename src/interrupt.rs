//! The process-wide "stop" request (Ctrl-C). Long library loops — training,
//! evaluation — poll `interrupted()` and stop cleanly after the current step;
//! the scripting layer sets the flag from its Ctrl-C handler.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once a stop was requested and nobody has cleared it yet.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Forget an earlier request (the REPL does this before each command).
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::Relaxed);
}

/// Request a stop, as Ctrl-C does; returns whether one was already pending.
pub fn request_interrupt() -> bool {
    INTERRUPTED.swap(true, Ordering::Relaxed)
}
