//! Progress of long runs, nested: a script's whole run, a method, a stage, its
//! steps (and an evaluation's tasks), each a line with its rate and ETA.
//!
//! On a terminal the lines are `indicatif` bars, one per open level, redrawn
//! in place under anything printed. Off a terminal (CI logs, files) each
//! level prints plain lines instead: a step loop every ~5% of its steps, an
//! outer level when it starts and each time it advances; every line names
//! the open levels (`reproduce › ProMoT › stage 1 12/100 | ...`).
//!
//! Outer levels are opened by whoever knows the plan ([`begin`], or
//! `progress_begin(label, total)` in scripts), with a total in any unit (steps,
//! weighted by cost) so their ETA covers the whole run. A step loop is a
//! [`Progress`]; `quiet` hides it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// "42s", "3m05s", "1h07m".
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

/// Whether progress is drawn as bars (stderr is a terminal) or printed as lines.
/// `PROMOT_PROGRESS=lines` forces lines on a terminal too.
fn bars() -> bool {
    static BARS: LazyLock<bool> = LazyLock::new(|| {
        std::io::stderr().is_terminal() && std::env::var("PROMOT_PROGRESS").ok().is_none_or(|v| v != "lines")
    });
    *BARS
}

/// The bars of this process, drawn together on stderr.
fn multi() -> &'static MultiProgress {
    static MULTI: LazyLock<MultiProgress> =
        LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
    &MULTI
}

/// One open outer level (script, method, stage).
struct Level {
    id: u64,
    label: String,
    total: Option<u64>,
    done: u64,
    /// Units found already done (a resumed script skipping finished work):
    /// they count toward the position but not the rate.
    skipped: Arc<AtomicU64>,
    start: Instant,
    bar: Option<ProgressBar>,
}

/// The time left for `total` units when `done` are, `skipped` of them
/// without taking time, after `elapsed` seconds.
fn eta(elapsed: f64, total: u64, done: u64, skipped: u64) -> String {
    let timed = done.saturating_sub(skipped);
    if timed == 0 {
        return "ETA unknown yet".to_string();
    }
    format!(
        "ETA {}",
        format_duration(elapsed * total.saturating_sub(done) as f64 / timed as f64)
    )
}

impl Level {
    /// "label 2/5 (40%) | 1m10s | ETA 1m45s", or "label | 1m10s" without a total.
    fn line(&self) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        match self.total {
            Some(total) if total > 0 => format!(
                "{} {}/{total} ({}%) | {} | {}",
                self.label,
                self.done,
                (self.done as u128 * 100 / total as u128),
                format_duration(elapsed),
                eta(elapsed, total, self.done, self.skipped.load(Ordering::Relaxed))
            ),
            _ => format!("{} | {}", self.label, format_duration(elapsed)),
        }
    }
}

static LEVELS: Mutex<Vec<Level>> = Mutex::new(Vec::new());

fn levels() -> std::sync::MutexGuard<'static, Vec<Level>> {
    // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
    LEVELS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The open levels' labels, outermost first, joined as "a › b › ".
fn context() -> String {
    levels().iter().map(|l| format!("{} › ", l.label)).collect()
}

fn print_line(text: &str) {
    if bars() {
        let _ = multi().println(text);
    } else {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}

/// An open level that closes when dropped, for Rust callers.
pub struct Scope {
    id: u64,
}

/// Open a level under the current ones: `total` units of work (`None` when
/// unknown), advanced by [`advance`]. Returns its id for [`end_level`].
pub fn begin(label: &str, total: Option<u64>) -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = context();
    let skipped = Arc::new(AtomicU64::new(0));
    let bar = bars().then(|| {
        let skipped = skipped.clone();
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template("{prefix}{msg} [{bar:20}] {pos}/{len} | {elapsed} | {run_eta}")
                    .expect("a valid progress template")
                    .with_key("run_eta", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let total = state.len().unwrap_or(0);
                        let line = eta(
                            state.elapsed().as_secs_f64(),
                            total,
                            state.pos(),
                            skipped.load(Ordering::Relaxed),
                        );
                        let _ = w.write_str(&line);
                    })
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix}{msg} {spinner} | {elapsed}").expect("a valid progress template"),
            ),
        };
        let bar = multi().add(bar);
        bar.set_prefix(prefix.clone());
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    });
    let level = Level {
        id,
        label: label.to_string(),
        total,
        done: 0,
        skipped,
        start: Instant::now(),
        bar,
    };
    if !bars() {
        print_line(&format!("{prefix}{}", level.line()));
    }
    levels().push(level);
    id
}

/// Advance the innermost open level by `units` of work just done; off a
/// terminal, print where it stands.
pub fn advance(units: u64) {
    advance_by(units, false)
}

/// Advance the innermost open level by `units` found already done (by an
/// earlier, resumed run): they move the position but not the rate.
pub fn skip(units: u64) {
    advance_by(units, true)
}

fn advance_by(units: u64, skipped: bool) {
    let line = {
        let mut open = levels();
        let Some(level) = open.last_mut() else { return };
        level.done = level.done.saturating_add(units);
        if skipped {
            let add = |s: u64| Some(s.saturating_add(units));
            let _ = level.skipped.fetch_update(Ordering::Relaxed, Ordering::Relaxed, add);
        }
        if let Some(bar) = &level.bar {
            bar.set_position(level.done);
        }
        let prefix: String = open[..open.len() - 1]
            .iter()
            .map(|l| format!("{} › ", l.label))
            .collect();
        (!bars()).then(|| format!("{prefix}{}", open[open.len() - 1].line()))
    };
    if let Some(line) = line {
        print_line(&line);
    }
}

/// Close level `id` (and any left open inside it).
pub fn end_level(id: u64) {
    let mut open = levels();
    let Some(i) = open.iter().position(|l| l.id == id) else {
        return;
    };
    for level in open.drain(i..).rev() {
        if let Some(bar) = level.bar {
            bar.finish_and_clear();
            multi().remove(&bar);
        }
    }
}

/// Close the innermost open level; false when none is open.
pub fn end() -> bool {
    let id = levels().last().map(|l| l.id);
    match id {
        Some(id) => {
            end_level(id);
            true
        }
        None => false,
    }
}

impl Scope {
    pub fn open(label: &str, total: Option<u64>) -> Self {
        Scope {
            id: begin(label, total),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        end_level(self.id);
    }
}

/// A step loop's progress line: step, loss, rate and ETA, under the open levels.
pub struct Progress {
    label: String,
    total: usize,
    start: Instant,
    first_step: usize,
    every: usize,
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A loop from `first_step` (a resumed run) to `total`; `quiet` shows nothing.
    pub fn new(label: &str, first_step: usize, total: usize, quiet: bool) -> Self {
        let bar = (!quiet && bars()).then(|| {
            let bar = ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len}{msg} | {rate} | ETA {eta}")
                    .expect("a valid progress template")
                    .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&format!("{:.2} it/s", state.per_sec()));
                    })
                    .progress_chars("=> "),
            );
            let bar = multi().add(bar);
            bar.set_prefix(format!("{}{label}", context()));
            bar.set_position(first_step as u64);
            bar.reset_eta();
            bar
        });
        Self {
            label: label.to_string(),
            total,
            start: Instant::now(),
            first_step,
            every: (total / 20).max(1),
            quiet,
            bar,
        }
    }

    /// Steps per second since this display started.
    pub fn rate(&self, step: usize) -> f64 {
        let done = step.saturating_sub(self.first_step) as f64;
        done / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// Step `step` is done; `loss` NaN means "no loss to show" (evaluation
    /// loops use this display too); `extra` is appended (" | eval 0.8").
    pub fn update(&self, step: usize, loss: f64, extra: &str) {
        if self.quiet {
            return;
        }
        let loss = if loss.is_nan() {
            String::new()
        } else {
            format!(" | loss {loss:.4}")
        };
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{loss}{extra}"));
            bar.set_position(step as u64);
            return;
        }
        if !(step.is_multiple_of(self.every) || step == self.total) {
            return;
        }
        let rate = self.rate(step);
        let eta = if rate > 0.0 {
            (self.total - step.min(self.total)) as f64 / rate
        } else {
            0.0
        };
        print_line(&format!(
            "{}{} {step}/{}{loss} | {rate:.2} it/s | ETA {}{extra}",
            context(),
            self.label,
            self.total,
            format_duration(eta)
        ));
    }

    /// A line printed above the bars (or in the log), unless quiet.
    pub fn message(&self, text: &str) {
        if !self.quiet {
            print_line(text);
        }
    }

    /// The loop is over: its bar gives way to one summary line (off a
    /// terminal the last periodic line already said it).
    pub fn finish(&self) {
        let Some(bar) = &self.bar else { return };
        if bar.is_finished() {
            return;
        }
        let step = bar.position() as usize;
        bar.finish_and_clear();
        multi().remove(bar);
        if step > self.first_step {
            print_line(&format!(
                "{} {step}/{}{} | {:.2} it/s | {}",
                bar.prefix(),
                self.total,
                bar.message(),
                self.rate(step),
                format_duration(self.start.elapsed().as_secs_f64())
            ));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
