//! Choosing where tensors live. CPU always works; CUDA and Metal only when the
//! binary was built with the matching cargo feature.
//!
//! One device per name per process: candle gives every `Device::new_cuda`
//! its own identity (and stream), and refuses to mix tensors of two, so
//! [`device`] opens a GPU once and hands out clones of it. The default device
//! (`promot --device NAME`, a script's `device(NAME)`) is where `load_model`,
//! `new_toy_model` and the tensors a script makes are put.

use std::sync::Mutex;

use candle_core::Device;

use crate::error::{Error, Result};

/// The GPUs opened so far, by canonical name ("cuda", "metal").
static OPENED: Mutex<Vec<(&'static str, Device)>> = Mutex::new(Vec::new());

/// The default device's canonical name; none means "cpu".
static DEFAULT: Mutex<Option<&'static str>> = Mutex::new(None);

/// The device called `name` ("cpu", "cuda" or "gpu", "metal"): the same
/// device (and stream) every time for a GPU. An unknown name, a feature this
/// binary was built without, or a GPU that cannot be opened is one error
/// that says which.
pub fn device(name: &str) -> Result<Device> {
    let canonical = canonical(name)?;
    if canonical == "cpu" {
        return Ok(Device::Cpu);
    }
    // Held while opening, so two threads cannot open two copies.
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = opened.iter().find(|(n, _)| *n == canonical) {
        return Ok(d.clone());
    }
    let d = open(canonical)?;
    opened.push((canonical, d.clone()));
    Ok(d)
}

/// "cpu", "cuda" or "metal" for a name [`device`] takes.
fn canonical(name: &str) -> Result<&'static str> {
    match name {
        "cpu" => Ok("cpu"),
        "cuda" | "gpu" => Ok("cuda"),
        "metal" => Ok("metal"),
        other => Err(Error::msg(format!(
            "unknown device '{other}' (expected \"cpu\", \"cuda\" or \"metal\")"
        ))),
    }
}

fn open(canonical: &str) -> Result<Device> {
    match canonical {
        "cuda" if cfg!(feature = "cuda") => Device::new_cuda(0).map_err(|e| {
            Error::msg(format!(
                "cannot open CUDA GPU 0 ({e}); is there an NVIDIA GPU and driver on this machine?"
            ))
        }),
        "cuda" => Err(Error::msg(
            "this promot was built without CUDA; build it with `scripts/build-cuda.sh` \
             (or `cargo build --release --features cuda` where CUDA is installed)",
        )),
        "metal" if cfg!(feature = "metal") => {
            Device::new_metal(0).map_err(|e| Error::msg(format!("cannot open the Metal device ({e})")))
        }
        "metal" => Err(Error::msg(
            "this promot was built without Metal; rebuild with `cargo build --release --features metal`",
        )),
        _ => Ok(Device::Cpu),
    }
}

/// Make `name` the default device, opening it now so that an unavailable
/// device is an error here rather than at the first model. Returns it.
pub fn set_default(name: &str) -> Result<Device> {
    let d = device(name)?;
    *DEFAULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(canonical(name)?);
    Ok(d)
}

/// The default device: the CPU unless [`set_default`] chose another.
pub fn default_device() -> Result<Device> {
    let name = DEFAULT.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or("cpu");
    device(name)
}

/// The default device's name ("cpu", "cuda" or "metal").
pub fn default_name() -> &'static str {
    DEFAULT.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or("cpu")
}

/// Set up the CPU side once at start-up, before any tensor work: promot's
/// thread count, and the allocator (`keep_freed_memory`).
///
/// Threads. promot's parallel work (BLAS products split by rows, the fused
/// kernels, the optimiser's kernel, candle's matmul) runs on rayon's pool,
/// whose workers sleep when idle: `threads` sets its size (`RAYON_NUM_THREADS`),
/// else it has one thread per core. candle's other pool, for its elementwise
/// ops, is held at 1 thread (`CANDLE_NUM_THREADS=1`) unless that variable is
/// set by hand: its caller spin-waits for every worker at every op, so on a
/// busy 2-core machine each op waits for a descheduled worker (a toy step
/// took 2.6 s on its 2 threads under load against 0.65 s on 1; README,
/// Performance).
///
/// Without `threads` (and without `RAYON_NUM_THREADS`), the pool gets the
/// cores that are idle at start-up (the host's CPUs less [`other_runnable_threads`], at most this process's cores): one per core on a quiet
/// machine, fewer on a busy one, where waiting for descheduled workers costs
/// more than the parallelism gains (README, Performance). Returns a note for
/// the user when that is fewer than one per core.
pub fn init_cpu(threads: Option<usize>) -> Option<String> {
    keep_freed_memory();
    let mut note = None;
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some((others, host_cpus)) = other_runnable_threads().filter(|_| cores > 1) {
            // Others compete for the host's CPUs, which may be more than this process may use (a container).
            let idle = host_cpus.saturating_sub(others).clamp(1, cores);
            if idle < cores {
                std::env::set_var("RAYON_NUM_THREADS", idle.to_string());
                note = Some(format!(
                    "note: the machine is busy ({others} other runnable thread(s) on {host_cpus} CPUs): using {idle} \
                     thread(s); --threads N overrides"
                ));
            }
        }
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    note
}

/// Threads of other processes that are running or waiting for a CPU now,
/// and the host's online CPUs they share: Linux's `procs_running` less this
/// thread and the `cpuN` lines of /proc/stat (both host-wide, also inside a
/// container). `procs_running` is the median of three readings 15 ms apart
/// (one reading may catch short-lived work). Unlike the load average it
/// forgets a job as soon as it ends, so a run started right after another
/// still gets every core. None where /proc/stat is missing.
pub fn other_runnable_threads() -> Option<(usize, usize)> {
    let read = || -> Option<(usize, usize)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("procs_running "))?;
        let running = line.split_whitespace().nth(1)?.parse::<usize>().ok()?;
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        Some((running.saturating_sub(1), cpus.max(1)))
    };
    let mut readings = Vec::with_capacity(3);
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        readings.push(read()?);
    }
    readings.sort_unstable();
    Some(readings[1])
}

/// Allocations up to this size are served from malloc's heap and reused
/// (`keep_freed_memory`); larger ones get a fresh mapping, faulted in and
/// zeroed by the kernel each time. glibc's maximum mmap threshold.
pub const REUSED_ALLOCATION_BYTES: usize = 32 << 20;

/// Keep freed memory for reuse instead of returning it to the kernel.
///
/// A training step allocates and frees hundreds of tensors of a few MB.
/// glibc's malloc serves each from a fresh `mmap` above its threshold (and
/// trims its heap as memory is freed), so every step faults the same pages in
/// again and the kernel zeroes them: on a t5-small step, 892k page faults,
/// against 501k with these settings and 9% less CPU time (`perf stat`,
/// benches/train_step.rs). The settings raise the mmap threshold to glibc's
/// maximum (32 MiB; larger tensors still get their own mapping) and stop
/// trimming. Call once at start-up, before tensor work; elsewhere than glibc
/// it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread allocates (start of main), and bad values are refused
    // by glibc with a 0 return, which leaves the defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, REUSED_ALLOCATION_BYTES as i32);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_by_name() {
        assert!(super::device("cpu").unwrap().is_cpu());
        let err = super::device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device 'tpu'"), "{err}");
        // Without a GPU (or without the feature) opening one is one clear error, and the default stays.
        if !cfg!(feature = "cuda") {
            let err = super::set_default("cuda").unwrap_err().to_string();
            assert!(err.contains("built without CUDA"), "{err}");
        }
        if !cfg!(feature = "metal") {
            assert!(super::device("metal")
                .unwrap_err()
                .to_string()
                .contains("built without Metal"));
        }
        assert_eq!(super::default_name(), "cpu");
        assert!(super::default_device().unwrap().is_cpu());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn other_runnable_threads_reads_proc_stat() {
        // This test's own thread is running, so /proc/stat counts at least one; the rest are others.
        let (others, cpus) = super::other_runnable_threads().expect("/proc/stat has procs_running on Linux");
        assert!(others < 100_000, "{others}");
        assert!(cpus >= 1);
    }
}
