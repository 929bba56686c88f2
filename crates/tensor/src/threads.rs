//! How many CPU threads training uses, decided once at program start.
//!
//! Three pools can run at once in a Candle program on the CPU:
//!
//! - Rayon's global pool (`RAYON_NUM_THREADS`): Candle's matrix products and this crate's
//!   kernels (`dl_tensor::kernels`) split their work over it;
//! - Candle's barrier pool (`CANDLE_NUM_THREADS` − 1 workers): Candle's element-wise operations.
//!   After each operation its workers keep spinning for `CANDLE_BARRIER_POOL_SPIN_LIMIT` rounds
//!   (25,000 by default) before they sleep;
//! - the calling thread.
//!
//! On a small machine those spinning workers take the cores that the next matrix product needs:
//! on 2 cores, with both variables at 2, the character LSTM trained *slower* than with 1 thread
//! (73.6k against 90.5k tokens/s). [`configure`] therefore gives the compute threads to Rayon
//! and keeps Candle's element-wise operations on the calling thread unless asked otherwise;
//! the heavy element-wise work of training runs in this crate's kernels on Rayon anyway.
//!
//! Defaults, each overridden by its variable when that is set:
//!
//! | variable | default | used by |
//! |---|---|---|
//! | `RAYON_NUM_THREADS` | the physical cores (Candle's own default) | matrix products, kernels |
//! | `CANDLE_NUM_THREADS` | 1 | Candle's element-wise operations |
//!
//! `docs/performance.md` has the measurements behind them.
//!
//! A training step splits work over Rayon's pool a dozen times or more (each kernel, each
//! matrix product). Called from `main`, every split hands the work to the pool, puts the
//! calling thread to sleep and wakes it when the pool is done: the character LSTM made about
//! 120 context switches per training step that way, against 14 when the loop itself runs on
//! one of the pool's threads, where a split is only work pushed on that thread's queue for the
//! others to take. [`on_compute_threads`] runs a training loop there.

use crate::TensorError;

/// The variable Rayon reads for the size of its global pool.
pub const RAYON_VARIABLE: &str = "RAYON_NUM_THREADS";
/// The variable Candle reads for the size of its element-wise pool.
pub const CANDLE_VARIABLE: &str = "CANDLE_NUM_THREADS";

/// The stack of each thread of Rayon's pool: 8 MiB, a Linux main thread's default (Rust's own
/// threads get 2 MiB).
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// What [`configure`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlan {
    /// Threads for matrix products and kernels (Rayon's global pool).
    pub compute_threads: usize,
    /// Threads for Candle's element-wise operations.
    pub elementwise_threads: usize,
    /// Where `compute_threads` came from, for a log line.
    pub source: String,
}

impl std::fmt::Display for ThreadPlan {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} compute threads ({}), {} for Candle's element-wise operations",
            self.compute_threads, self.source, self.elementwise_threads
        )
    }
}

/// The most compute threads [`configure`] accepts.
pub const MAX_THREADS: usize = 1024;

/// A positive whole number in `variable`, if it holds one.
fn from_environment(variable: &str) -> Option<usize> {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&threads| threads > 0)
}

/// Decides the thread counts and writes them to `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS`,
/// where Rayon and Candle read them when their pools start. `requested` (a `--threads` flag)
/// wins over `RAYON_NUM_THREADS`, which wins over the default, the physical cores; Candle's
/// element-wise pool keeps `CANDLE_NUM_THREADS` when set, else 1.
///
/// It also starts Rayon's global pool with that many threads, each with a stack of
/// [`WORKER_STACK_BYTES`].
///
/// Call it first thing in `main`, before any tensor operation and before other threads start:
/// the pools read the variables once, and changing the environment while other threads read it
/// is a data race on some platforms.
///
/// More than [`MAX_THREADS`] threads, or a pool whose threads cannot be started, is an error
/// that says so.
///
/// ```
/// let plan = dl_tensor::threads::configure(Some(3))?;
/// assert_eq!(plan.compute_threads, 3);
/// assert_eq!(std::env::var("RAYON_NUM_THREADS").unwrap(), "3");
/// # Ok::<(), dl_tensor::TensorError>(())
/// ```
pub fn configure(requested: Option<usize>) -> crate::Result<ThreadPlan> {
    if let Some(threads) = requested.filter(|&threads| threads > MAX_THREADS) {
        return Err(TensorError::Threads {
            threads,
            problem: format!("at most {MAX_THREADS} threads are supported; pass a smaller --threads (the physical cores are the default)"),
        });
    }
    let (compute_threads, source) = match (
        requested.filter(|&n| n > 0),
        from_environment(RAYON_VARIABLE),
    ) {
        (Some(threads), _) => (threads, "--threads".to_string()),
        (None, Some(threads)) => (threads, format!("from {RAYON_VARIABLE}")),
        (None, None) => (
            candle_core::utils::get_num_threads(),
            "the physical cores".to_string(),
        ),
    };
    let elementwise_threads = from_environment(CANDLE_VARIABLE).unwrap_or(1);
    std::env::set_var(RAYON_VARIABLE, compute_threads.to_string());
    std::env::set_var(CANDLE_VARIABLE, elementwise_threads.to_string());
    // Started here rather than on first use, to give its threads the stack a main thread has:
    // programs run their whole loop on one of them (`on_compute_threads`), and Candle's
    // backpropagation walks the graph recursively. Fails, harmlessly, when the pool has
    // already started (an error without a cause); it then keeps its size. Threads that cannot
    // be started (the process's limits) are an error.
    if let Err(error) = rayon::ThreadPoolBuilder::new()
        .num_threads(compute_threads)
        .stack_size(WORKER_STACK_BYTES)
        .build_global()
    {
        if let Some(cause) = std::error::Error::source(&error) {
            return Err(TensorError::Threads {
                threads: compute_threads,
                problem: format!("the thread pool cannot start them ({cause}); pass a smaller --threads or raise the process's thread limit"),
            });
        }
    }
    Ok(ThreadPlan {
        compute_threads,
        elementwise_threads,
        source,
    })
}

/// Runs `work` on one of the threads of Rayon's global pool and returns its result: call the
/// training loop through it, so that the kernels and matrix products it starts are shared out
/// from inside the pool instead of being handed over from outside and waited for (see the
/// module documentation). Inside the pool it simply calls `work`.
///
/// ```
/// let on_pool = dl_tensor::threads::on_compute_threads(|| rayon::current_thread_index().is_some());
/// assert!(on_pool);
/// ```
pub fn on_compute_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // `join` runs its first closure on a worker of the pool, injecting the whole call when the
    // caller is outside it; the second closure has nothing to do.
    rayon::join(work, || ()).0
}

/// A program's whole run, as both apps do it: the thread plan for `requested` (set before any
/// tensor operation starts a pool), then `work` on a thread of the compute pool. An error is
/// printed as `error: …` with its causes (`{:#}`), and the process exits with status 1.
pub fn run_program<E: std::fmt::Display + Send>(
    requested: Option<usize>,
    work: impl FnOnce() -> Result<(), E> + Send,
) {
    if let Err(error) = configure(requested) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    if let Err(error) = on_compute_threads(work) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
