//! Time as the stores see it, and a clock tests can move by hand.
//!
//! Stores read time in whole milliseconds. [`Clock::system`] is the real
//! clock; [`ManualClock`] stands still until told to advance, so expiry logic
//! can be tested exactly and instantly. Real-clock tests keep using the
//! system clock.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// The time source of a store.
///
/// Cheap to clone. The default is [`Clock::system`].
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The real clock: monotonic time for in-memory expiry, wall-clock time
    /// for expiry that is persisted.
    pub fn system() -> Self {
        Clock(Source::System)
    }

    /// Milliseconds on a clock that never goes backwards, for in-process
    /// expiry. Only differences between two readings mean anything.
    #[cfg_attr(not(feature = "memory"), allow(dead_code))] // used by MemoryStore
    pub(crate) fn monotonic_millis(&self) -> u64 {
        match &self.0 {
            Source::System => {
                // One base for the whole process, so every store's readings
                // are comparable. Offset by a day so that "now minus a
                // duration" cannot underflow in practice.
                static BASE: OnceLock<Instant> = OnceLock::new();
                let base = BASE.get_or_init(Instant::now);
                86_400_000 + base.elapsed().as_millis() as u64
            }
            Source::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Milliseconds since the Unix epoch, for expiry that is persisted and
    /// must mean the same after a restart or in another process: the time
    /// in which listings and exports give an entry's `expires_at`.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Clock, ManualClock};
    ///
    /// let manual = ManualClock::starting_at(1_764_031_234_567);
    /// assert_eq!(Clock::from(manual).unix_millis(), 1_764_031_234_567);
    /// assert!(Clock::system().unix_millis() > 1_700_000_000_000);
    /// ```
    pub fn unix_millis(&self) -> u64 {
        match &self.0 {
            Source::System => system_unix_millis(),
            Source::Manual(now) => now.load(Ordering::Acquire),
        }
    }
}

fn system_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A clock that moves only when told to, for tests of expiry.
///
/// It starts at the current wall-clock time, so that timestamps a
/// [`FileStore`](crate::FileStore) persists under it are plausible. Clones
/// share the same time.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kvstores::{Bytes, ManualClock, MemoryStore, Store};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new();
/// let store = MemoryStore::builder().clock(clock.clone()).build();
/// store.set("k", Bytes::from_static(b"v"), Some(Duration::from_secs(10))).await?;
///
/// clock.advance(Duration::from_secs(9));
/// assert!(store.exists("k").await?);
/// clock.advance(Duration::from_secs(1));
/// assert!(!store.exists("k").await?);
/// # Ok::<(), kvstores::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at the current wall-clock time.
    pub fn new() -> Self {
        Self::starting_at(system_unix_millis())
    }

    /// A clock standing at `unix_millis` milliseconds after the Unix epoch.
    pub fn starting_at(unix_millis: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(unix_millis)))
    }

    /// Moves the clock forward by `by` (whole milliseconds, rounded down).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(ms))
            });
    }

    /// The clock's reading, in milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Self {
        Clock(Source::Manual(clock.0))
    }
}

/// Converts an `expires_in` or `renew_for` into whole milliseconds, the
/// precision every backend keeps.
///
/// Durations are truncated to milliseconds (so what a store reports as
/// remaining is never more than what was asked), except that anything shorter
/// than a millisecond counts as one. Zero is refused; `what` names the
/// argument in the error.
pub(crate) fn ttl_millis(duration: Duration, what: &str) -> Result<u64> {
    if duration.is_zero() {
        return Err(Error::invalid_argument(format!(
            "{what} must be greater than zero"
        )));
    }
    Ok(u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1))
}

/// [`ttl_millis`] for an optional duration.
pub(crate) fn opt_ttl_millis(duration: Option<Duration>, what: &str) -> Result<Option<u64>> {
    duration.map(|d| ttl_millis(d, what)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_sub_millisecond_up_and_truncates_the_rest() {
        assert_eq!(ttl_millis(Duration::from_nanos(1), "x").unwrap(), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500), "x").unwrap(), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2), "x").unwrap(), 2000);
        assert_eq!(ttl_millis(Duration::MAX, "x").unwrap(), u64::MAX);
        assert!(matches!(
            ttl_millis(Duration::ZERO, "expires_in"),
            Err(Error::InvalidArgument { message }) if message.contains("expires_in")
        ));
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::starting_at(1_000);
        let clock = Clock::from(manual.clone());
        assert_eq!(clock.monotonic_millis(), 1_000);
        manual.advance(Duration::from_millis(250));
        assert_eq!(clock.unix_millis(), 1_250);
        assert_eq!(manual.now_millis(), 1_250);
    }
}
