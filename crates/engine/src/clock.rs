//! Where the engine gets the time. Timestamps come from a [`Clock`]; waiting (timeouts,
//! backoff, heartbeats) uses tokio's timer. Tests pass a [`TokioClock`] that starts at a fixed
//! instant, so recorded times are reproducible; lease, heartbeat and backoff lengths are
//! options, so tests of takeover and retry wait milliseconds, not minutes.

use std::fmt::Debug;
use std::time::SystemTime;

use kamachiq_domain::Timestamp;

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time, for production.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// Time that starts at a fixed instant and moves with tokio's timer.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: Timestamp) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.plus(self.start.elapsed())
    }
}
