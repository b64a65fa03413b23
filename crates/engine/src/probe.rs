//! Named points in a deliverable's execution where tests can stop the engine as if the process
//! had been killed there. Production uses [`NoProbe`].

use std::fmt::Debug;

use kamachiq_domain::DeliverableId;

/// Where in a deliverable's execution the engine is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Point {
    /// The deliverable's claim is committed.
    Claimed,
    /// A step's process is about to start.
    StepStarting { index: u32 },
    /// A step's process ended (and its changes are committed to the branch), before the result
    /// is recorded.
    StepEnded { index: u32 },
    /// All steps passed; the merge is next.
    BeforeMerge,
    /// The branch is merged into the target, before the success is recorded.
    AfterMerge,
}

/// What the engine does at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Stop dead, writing nothing more, as a `kill -9` would.
    Crash,
}

pub trait Probe: Send + Sync + Debug {
    fn at(&self, deliverable: &DeliverableId, point: &Point) -> Action;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn at(&self, _: &DeliverableId, _: &Point) -> Action {
        Action::Continue
    }
}
