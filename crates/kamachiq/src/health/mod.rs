//! The probes behind `kamachiq doctor`: the machine (CPU, memory, disk), git and the coding
//! agents, each judged `healthy`, `degraded` or `unhealthy` by the rules and thresholds here.
//!
//! Parsing ([`parse`]) and judging (here) are pure functions, tested at their thresholds. The
//! probes around them ([`system`], [`program`]) never hang and never fail: every program runs
//! with a timeout (its whole process group is killed when it runs out), blocking calls run off
//! the async threads, and whatever goes wrong becomes a component's status and detail instead
//! of an error.

mod parse;
mod program;
mod system;

pub use program::{agent, agent_label, git};
pub use system::{cpu, disk, memory};

use std::time::Duration;

use serde::Serialize;

/// How a component is doing. Ordered from best to worst: a report is as bad as its worst part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    /// Works, but needs a look: kamachiq may be slow, or a tool that plans may use is broken.
    Degraded,
    /// kamachiq cannot work properly until this is fixed.
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the doctor checked.
#[derive(Clone, Debug, Serialize)]
pub struct Component {
    /// Stable, for scripts: `cpu`, `memory`, `disk`, `git`, an agent's name, `store`, `config`.
    pub name: String,
    /// For people: `CPU Usage`, `Claude Code`.
    pub label: String,
    pub status: Status,
    /// What was measured, short: `45%`, `2.47.3`, `not installed`.
    pub value: String,
    /// One line on what was found and, when it is not healthy, why.
    pub detail: String,
    #[serde(flatten)]
    pub facts: Facts,
}

/// The measured values behind a component, as data; each only where it applies.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Facts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

impl Component {
    pub fn new(
        name: &str,
        label: &str,
        status: Status,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            status,
            value: value.into(),
            detail: detail.into(),
            facts: Facts::default(),
        }
    }

    pub fn with(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }
}

/// Every component and the overall status: the worst of them.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub status: Status,
    pub components: Vec<Component>,
}

impl Report {
    pub fn new(components: Vec<Component>) -> Self {
        let status = components
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Healthy);
        Self { status, components }
    }
}

/// `probe`, or `timed_out()` if it has not finished within `limit`: a probe that hangs costs
/// its own component, never the report.
pub async fn within(
    limit: Duration,
    probe: impl Future<Output = Component>,
    timed_out: impl FnOnce() -> Component,
) -> Component {
    tokio::time::timeout(limit, probe)
        .await
        .unwrap_or_else(|_| timed_out())
}

// ---------------------------------------------------------------------------------------------
// Thresholds and the rules that apply them.

/// Percentages at which a measure stops being healthy. A value *at* a threshold is past it:
/// 80% CPU is degraded. Values are judged as the whole percentages shown, so what a person
/// reads is what was judged (79.6% shows, and counts, as 80%).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub degraded: u32,
    /// `None`: never unhealthy on its own.
    pub unhealthy: Option<u32>,
}

impl Threshold {
    pub fn judge(self, percent: u32) -> Status {
        match self.unhealthy {
            Some(unhealthy) if percent >= unhealthy => Status::Unhealthy,
            _ if percent >= self.degraded => Status::Degraded,
            _ => Status::Healthy,
        }
    }

    /// `degraded at 80%, unhealthy at 95%`, for details.
    fn describe(self) -> String {
        match self.unhealthy {
            Some(unhealthy) => format!("degraded at {}%, unhealthy at {unhealthy}%", self.degraded),
            None => format!("degraded at {}%", self.degraded),
        }
    }
}

/// CPU: a busy machine runs steps slowly but correctly, and one 200 ms sample says little
/// more, so CPU alone never makes the report unhealthy.
pub const CPU: Threshold = Threshold {
    degraded: 80,
    unhealthy: None,
};

/// Memory in use (MemTotal − MemAvailable): near the top, the kernel kills steps.
pub const MEMORY: Threshold = Threshold {
    degraded: 85,
    unhealthy: Some(95),
};

/// The file system holding the home: the SQLite database, step logs and worktrees. A full disk
/// fails commits; see also [`DISK_MIN_FREE`].
pub const DISK: Threshold = Threshold {
    degraded: 90,
    unhealthy: Some(98),
};

/// Less free space than this is unhealthy whatever the percentage (a large disk at 97% may
/// still have room; a small one at 80% may not).
pub const DISK_MIN_FREE: u64 = 500 * MIB;

/// The oldest git kamachiq works with: merges computed by `git merge-tree --write-tree`.
pub const GIT_MIN: (u32, u32) = (2, 38);

/// How long a program's `--version` may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// The CPU sample: two readings of `/proc/stat` this far apart.
pub const CPU_SAMPLE: Duration = Duration::from_millis(200);

const MIB: u64 = 1024 * 1024;

pub fn judge_disk(percent: u32, free_bytes: u64) -> Status {
    let by_space = if free_bytes < DISK_MIN_FREE {
        Status::Unhealthy
    } else {
        Status::Healthy
    };
    DISK.judge(percent).max(by_space)
}

/// Whether `found` (major, minor) is new enough.
pub fn git_is_recent(found: (u32, u32)) -> bool {
    found >= GIT_MIN
}

/// `part` of `whole` as a whole percentage, rounded half up; `None` when `whole` is zero.
pub fn percent(part: u64, whole: u64) -> Option<u32> {
    if whole == 0 {
        return None;
    }
    let (part, whole) = (u128::from(part.min(whole)), u128::from(whole));
    u32::try_from((part * 200 + whole) / (whole * 2)).ok()
}

/// `1.5 GiB`, `420 MiB`.
pub fn bytes(n: u64) -> String {
    const GIB: u64 = 1024 * MIB;
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else {
        format!("{} MiB", n / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_half_up() {
        assert_eq!(percent(796, 1000), Some(80));
        assert_eq!(percent(795, 1000), Some(80));
        assert_eq!(percent(794, 1000), Some(79));
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(u64::MAX, u64::MAX), Some(100));
        assert_eq!(
            percent(5, 3),
            Some(100),
            "a part is never more than the whole"
        );
    }

    #[test]
    fn cpu_is_degraded_from_exactly_80_percent_and_never_unhealthy() {
        assert_eq!(CPU.judge(79), Status::Healthy);
        assert_eq!(CPU.judge(80), Status::Degraded);
        assert_eq!(CPU.judge(100), Status::Degraded);
    }

    #[test]
    fn memory_is_degraded_from_85_and_unhealthy_from_95_percent() {
        assert_eq!(MEMORY.judge(84), Status::Healthy);
        assert_eq!(MEMORY.judge(85), Status::Degraded);
        assert_eq!(MEMORY.judge(94), Status::Degraded);
        assert_eq!(MEMORY.judge(95), Status::Unhealthy);
    }

    #[test]
    fn disk_is_judged_by_percentage_and_by_free_space() {
        let plenty = 10 * 1024 * MIB;
        assert_eq!(judge_disk(89, plenty), Status::Healthy);
        assert_eq!(judge_disk(90, plenty), Status::Degraded);
        assert_eq!(judge_disk(97, plenty), Status::Degraded);
        assert_eq!(judge_disk(98, plenty), Status::Unhealthy);
        assert_eq!(judge_disk(50, DISK_MIN_FREE), Status::Healthy);
        assert_eq!(judge_disk(50, DISK_MIN_FREE - 1), Status::Unhealthy);
    }

    #[test]
    fn the_report_is_as_bad_as_its_worst_component() {
        let part = |status| Component::new("x", "X", status, "", "");
        assert_eq!(Report::new(vec![]).status, Status::Healthy);
        let report = Report::new(vec![part(Status::Healthy), part(Status::Degraded)]);
        assert_eq!(report.status, Status::Degraded);
        let report = Report::new(vec![
            part(Status::Unhealthy),
            part(Status::Degraded),
            part(Status::Healthy),
        ]);
        assert_eq!(report.status, Status::Unhealthy);
    }

    #[test]
    fn git_needs_2_38_or_newer() {
        assert!(!git_is_recent((2, 37)));
        assert!(git_is_recent((2, 38)));
        assert!(git_is_recent((3, 0)));
        assert!(!git_is_recent((1, 99)));
    }
}
