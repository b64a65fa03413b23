//! The machine: CPU and memory from /proc (Linux), disk space with `statvfs`.

use std::path::{Path, PathBuf};

use super::parse::{cpu_count, cpu_percent, parse_cpu_times, parse_meminfo};
use super::{
    CPU, CPU_SAMPLE, Component, DISK, DISK_MIN_FREE, Facts, MEMORY, Status, bytes, judge_disk,
    percent,
};

fn cannot_measure(name: &str, label: &str, why: &str) -> Component {
    Component::new(
        name,
        label,
        Status::Degraded,
        "unknown",
        format!("cannot measure on this system: {why}"),
    )
}

/// Whether /proc can be expected: CPU and memory are measured on Linux only.
fn on_linux() -> bool {
    cfg!(target_os = "linux")
}

/// CPU use of the whole machine over [`CPU_SAMPLE`].
pub async fn cpu() -> Component {
    const NAME: &str = "cpu";
    const LABEL: &str = "CPU Usage";
    if !on_linux() {
        return cannot_measure(NAME, LABEL, "CPU use is read from /proc/stat, on Linux");
    }
    let read = || async {
        let text = tokio::fs::read_to_string("/proc/stat")
            .await
            .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        let times = parse_cpu_times(&text).ok_or("no cpu line in /proc/stat")?;
        Ok::<_, String>((times, cpu_count(&text)))
    };
    let sample = async {
        let (before, _) = read().await?;
        tokio::time::sleep(CPU_SAMPLE).await;
        let (after, cpus) = read().await?;
        let used = cpu_percent(before, after).ok_or("/proc/stat did not advance")?;
        Ok::<_, String>((used, cpus))
    };
    match sample.await {
        Ok((used, cpus)) => Component::new(
            NAME,
            LABEL,
            CPU.judge(used),
            format!("{used}%"),
            format!(
                "{cpus} CPU(s), sampled over {}ms ({})",
                CPU_SAMPLE.as_millis(),
                CPU.describe()
            ),
        )
        .with(Facts {
            percent: Some(used),
            ..Facts::default()
        }),
        Err(why) => cannot_measure(NAME, LABEL, &why),
    }
}

/// Memory in use: MemTotal − MemAvailable.
pub async fn memory() -> Component {
    const NAME: &str = "memory";
    const LABEL: &str = "Memory";
    if !on_linux() {
        return cannot_measure(NAME, LABEL, "memory is read from /proc/meminfo, on Linux");
    }
    let text = match tokio::fs::read_to_string("/proc/meminfo").await {
        Ok(text) => text,
        Err(e) => return cannot_measure(NAME, LABEL, &format!("cannot read /proc/meminfo: {e}")),
    };
    let Some(memory) = parse_meminfo(&text) else {
        return cannot_measure(NAME, LABEL, "no MemTotal and MemAvailable in /proc/meminfo");
    };
    let Some(used) = percent(memory.used(), memory.total) else {
        return cannot_measure(NAME, LABEL, "/proc/meminfo gives a MemTotal of 0");
    };
    Component::new(
        NAME,
        LABEL,
        MEMORY.judge(used),
        format!("{used}%"),
        format!(
            "{} of {} in use ({})",
            bytes(memory.used()),
            bytes(memory.total),
            MEMORY.describe()
        ),
    )
    .with(Facts {
        percent: Some(used),
        free_bytes: Some(memory.available),
        total_bytes: Some(memory.total),
        ..Facts::default()
    })
}

/// The nearest directory that exists at or above `path` (the home may not exist yet).
fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.is_dir())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `x`, whatever unsigned integer type the platform's `statvfs` fields have.
fn wide(x: impl Into<u64>) -> u64 {
    x.into()
}

/// Use of the file system holding `home`, as `df` counts it: used over used plus what an
/// unprivileged user may still write.
pub async fn disk(home: &Path) -> Component {
    const NAME: &str = "disk";
    const LABEL: &str = "Disk Space";
    let dir = existing_ancestor(home);
    let shown = home.display().to_string();
    let probed = dir.clone();
    // statvfs can block (a stale network mount): off the async threads.
    let stat = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(&probed)).await;
    let stat = match stat {
        Ok(Ok(stat)) => stat,
        Ok(Err(e)) => {
            return cannot_measure(
                NAME,
                LABEL,
                &format!("statvfs {}: {}", dir.display(), e.desc()),
            );
        }
        Err(e) => return cannot_measure(NAME, LABEL, &format!("statvfs did not finish: {e}")),
    };
    let unit = wide(stat.fragment_size());
    let used = unit.saturating_mul(wide(stat.blocks()).saturating_sub(wide(stat.blocks_free())));
    let free = unit.saturating_mul(wide(stat.blocks_available()));
    let total = unit.saturating_mul(wide(stat.blocks()));
    let Some(used_percent) = percent(used, used.saturating_add(free)) else {
        return cannot_measure(NAME, LABEL, &format!("{} reports no size", dir.display()));
    };
    Component::new(
        NAME,
        LABEL,
        judge_disk(used_percent, free),
        format!("{used_percent}%"),
        format!(
            "{} free of {} on the file system of {shown} ({}, or under {} free)",
            bytes(free),
            bytes(total),
            DISK.describe(),
            bytes(DISK_MIN_FREE)
        ),
    )
    .with(Facts {
        percent: Some(used_percent),
        free_bytes: Some(free),
        total_bytes: Some(total),
        path: Some(shown),
        ..Facts::default()
    })
}
