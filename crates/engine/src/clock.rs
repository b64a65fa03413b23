//! Where the engine gets the time. Waiting (timeouts, backoff, heartbeats) uses tokio's timer,
//! which tests pause and advance; timestamps come from a [`Clock`], so in tests they follow the
//! same virtual time and every recorded instant is deterministic.

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

/// Time that starts at a fixed instant and moves with tokio's timer, so it stands still while
/// a test has tokio's time paused and jumps when the test advances it.
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
