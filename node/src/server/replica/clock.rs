//! Time as the replica sees it: a monotonic clock that logical ticks are counted from, and the
//! wall clock that TTL deadlines are compared with. Both come from outside, so that the
//! simulator can run a replica on time of its own (skewed, paused, stepped).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a replica's time comes from.
pub trait Clock: Send {
    /// Time since the replica started, on a clock that never goes back.
    fn elapsed(&self) -> Duration;
    /// Wall-clock time in Unix milliseconds: only TTL deadlines use it.
    fn unix_ms(&self) -> i64;
}

/// The machine's clocks.
pub struct SystemClock {
    started: Instant,
}

impl SystemClock {
    pub fn starting_now() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    /// When the replica's time began: `elapsed` counts from here.
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn unix_ms(&self) -> i64 {
        now_unix_ms()
    }
}

/// This machine's wall clock in Unix milliseconds, as the node reads it for TTL deadlines
/// (plus the test builds' step, see [`step_wall_clock`]).
pub fn now_unix_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now.saturating_add(wall_clock_step::get())
}

/// Test builds (the `failpoints` feature) can step the node's wall clock, as NTP stepping the
/// machine's clock would: only TTL deadlines read it. Monotonic time is never touched.
#[cfg(feature = "failpoints")]
pub fn step_wall_clock(offset_ms: i64) {
    wall_clock_step::set(offset_ms);
}

#[cfg(feature = "failpoints")]
mod wall_clock_step {
    use std::sync::atomic::{AtomicI64, Ordering};

    static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

    pub fn get() -> i64 {
        OFFSET_MS.load(Ordering::Relaxed)
    }

    pub fn set(offset_ms: i64) {
        OFFSET_MS.store(offset_ms, Ordering::Relaxed);
    }
}

#[cfg(not(feature = "failpoints"))]
mod wall_clock_step {
    pub fn get() -> i64 {
        0
    }
}

/// Logical time from the monotonic clock: tick `n` is due `n` tick lengths after the replica
/// started. A tick is never given twice, and a stall is made up for tick by tick (the core
/// counts elections, heartbeats and leases in ticks).
pub struct TickClock {
    clock: Box<dyn Clock>,
    tick: Duration,
    /// Ticks given to the core so far.
    delivered: u64,
}

impl TickClock {
    pub fn new(clock: Box<dyn Clock>, tick: Duration) -> Self {
        Self {
            clock,
            tick: tick.max(Duration::from_millis(1)),
            delivered: 0,
        }
    }

    /// Ticks given so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The monotonic clock itself, as time since the start: what lease deadlines are kept
    /// on. Not the ticks: they lag it by up to a tick, and a deadline counted from a tick
    /// could pass before the client's keepalive promised.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Logical time: the ticks given, as time since the start (behind the monotonic clock by
    /// less than a tick once the due ticks are taken).
    pub fn now(&self) -> Duration {
        Duration::from_nanos((self.tick.as_nanos() as u64).saturating_mul(self.delivered))
    }

    /// When the next tick falls due, as time since the start.
    pub fn next_deadline(&self) -> Duration {
        let nanos = (self.tick.as_nanos() as u64).saturating_mul(self.delivered + 1);
        Duration::from_nanos(nanos)
    }

    /// Counts one more tick as given if one is due by now.
    pub fn take_due_tick(&mut self) -> bool {
        let due = self.clock.elapsed() >= self.next_deadline();
        if due {
            self.delivered += 1;
        }
        due
    }

    pub fn unix_ms(&self) -> i64 {
        self.clock.unix_ms()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Manual(Arc<AtomicU64>);

    impl Clock for Manual {
        fn elapsed(&self) -> Duration {
            Duration::from_millis(self.0.load(Ordering::SeqCst))
        }
        fn unix_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst) as i64
        }
    }

    #[test]
    fn a_stall_is_made_up_tick_by_tick_and_no_tick_is_given_twice() {
        let now = Arc::new(AtomicU64::new(0));
        let mut clock = TickClock::new(Box::new(Manual(now.clone())), Duration::from_millis(100));
        assert!(!clock.take_due_tick());
        now.store(250, Ordering::SeqCst);
        assert!(clock.take_due_tick());
        assert!(clock.take_due_tick());
        assert!(!clock.take_due_tick());
        assert_eq!(clock.delivered(), 2);
        assert_eq!(clock.next_deadline(), Duration::from_millis(300));
    }
}
