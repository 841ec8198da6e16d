//! A one-line progress display for long loops: step, loss, rate and ETA.
//! Redrawn in place on a terminal; printed every `every` steps otherwise, so
//! logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    label: String,
    total: usize,
    start: Instant,
    first_step: usize,
    tty: bool,
    every: usize,
    quiet: bool,
}

pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Progress {
    pub fn new(label: &str, first_step: usize, total: usize, quiet: bool) -> Self {
        let every = (total / 20).max(1);
        Self {
            label: label.to_string(),
            total,
            start: Instant::now(),
            first_step,
            tty: std::io::stderr().is_terminal(),
            every,
            quiet,
        }
    }

    /// Steps per second since this display started.
    pub fn rate(&self, step: usize) -> f64 {
        let done = step.saturating_sub(self.first_step) as f64;
        done / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    pub fn update(&self, step: usize, loss: f64, extra: &str) {
        if self.quiet {
            return;
        }
        let rate = self.rate(step);
        let eta = if rate > 0.0 {
            (self.total - step.min(self.total)) as f64 / rate
        } else {
            0.0
        };
        // NaN loss means "no loss to show" (evaluation loops reuse this display).
        let loss = if loss.is_nan() {
            String::new()
        } else {
            format!(" | loss {loss:.4}")
        };
        let line = format!(
            "{} {step}/{}{loss} | {rate:.2} it/s | ETA {}{extra}",
            self.label,
            self.total,
            format_duration(eta)
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else if step.is_multiple_of(self.every) || step == self.total {
            let _ = writeln!(err, "{line}");
        }
    }

    pub fn message(&self, text: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{text}");
    }

    pub fn finish(&self) {
        if !self.quiet && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}
