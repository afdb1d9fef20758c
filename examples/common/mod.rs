//! What the workload runner (`workload.rs`), the peers (`peers.rs`) and the
//! `delete_expired` latency probe (`expiry_latency.rs`) share: the standard
//! workload's keys and values, its JSON line, and the timed loop that splits
//! N operations among C tasks or threads. The loops take a closure for one
//! operation, so they fit a `Store`, a `&dyn Store` or a peer that is no
//! `Store` at all.
#![allow(dead_code)] // each example uses part of it

use std::future::Future;
use std::iter::StepBy;
use std::ops::Range;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// `n` keys `{prefix}-{i}`, as the standard workload names them.
pub fn keys(n: usize, prefix: &str) -> Arc<[String]> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `count` values of `size` pseudo-random bytes (xorshift: reproducible, and
/// no dependency for something this small).
pub fn random_values(count: usize, size: usize) -> Arc<[Bytes]> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..count)
        .map(|_| {
            (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect::<Vec<u8>>()
                .into()
        })
        .collect()
}

/// One figure of the standard workload (shared `BENCH.md`).
#[derive(Debug, Clone, Copy)]
pub struct Figure<'a> {
    /// `kvstores-memory`, `sqlite-wal-full`, ...
    pub system: &'a str,
    /// `set`, `get_hit`, ...
    pub op: &'a str,
    /// Tasks or threads sharing the operations.
    pub concurrency: usize,
    /// Operations timed.
    pub ops: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Seconds the operations took.
    pub secs: f64,
}

impl Figure<'_> {
    /// Prints the figure as the one JSON line `BENCH.md` specifies. System
    /// and op names are plain ASCII words, so they need no JSON escaping.
    pub fn print(&self) {
        println!(
            "{{\"system\":\"{}\",\"op\":\"{}\",\"concurrency\":{},\"ops\":{},\"value_size\":{},\"secs\":{:.6},\"ops_per_s\":{:.1}}}",
            self.system,
            self.op,
            self.concurrency,
            self.ops,
            self.value_size,
            self.secs,
            self.ops as f64 / self.secs
        );
    }
}

/// Runs `n` operations on `concurrency` tokio tasks and returns the seconds
/// from the first spawn to the last task's end. `task(indices)` makes the
/// future of one task, which does the operations `indices` (task `t` gets
/// `t, t + C, t + 2C, ...`) one after another; it clones what it needs once
/// per task, not once per operation. The first error stops the run.
pub async fn on_tasks<F, Fut>(concurrency: usize, n: usize, task: F) -> Result<f64, String>
where
    F: Fn(StepBy<Range<usize>>) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| tokio::spawn(task((t..n).step_by(concurrency))))
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Runs `op(&mut state, i)` for every `i` in `0..n` on `concurrency` OS
/// threads, the way `on_tasks` splits them; each thread first makes its own
/// `state` with `init(thread)` (a connection, a read transaction), which is
/// not timed. Returns the seconds from the first thread's first operation to
/// the last thread's end: each thread reads the clock itself once all are
/// ready, since the thread that spawned them may be scheduled much later.
pub fn on_threads<S, I, F>(concurrency: usize, n: usize, init: I, op: F) -> Result<f64, String>
where
    I: Fn(usize) -> Result<S, String> + Sync,
    F: Fn(&mut S, usize) -> Result<(), String> + Sync,
{
    let ready = Barrier::new(concurrency);
    let spans = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..concurrency)
            .map(|thread| {
                let (init, op, ready) = (&init, &op, &ready);
                scope.spawn(move || {
                    let state = init(thread);
                    ready.wait();
                    let start = Instant::now();
                    let mut state = state?;
                    for i in (thread..n).step_by(concurrency) {
                        op(&mut state, i)?;
                    }
                    Ok::<_, String>((start, Instant::now()))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| "a worker thread panicked".to_owned())?
            })
            .collect::<Result<Vec<_>, String>>()
    })?;
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let end = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    Ok((end - start).as_secs_f64())
}

/// Milliseconds since the Unix epoch `d` from now, the absolute expiry that
/// peers without expiry of their own store beside a value.
pub fn deadline_ms(d: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    (now + d).as_millis() as u64
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    deadline_ms(Duration::ZERO)
}

/// The `q`-quantile (0 to 1) of `samples`, sorting them; zero when empty.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}
