//! Reading what the system and programs say: `/proc/stat`, `/proc/meminfo`, and the lines
//! programs print for `--version`. Pure functions, no I/O.

use super::percent;

/// Jiffies spent by all CPUs together, from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Reads the aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal (guest time is already counted in user and nice). Idle and iowait are not busy.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// How many CPUs `/proc/stat` lists (`cpu0`, `cpu1`, ...).
pub fn cpu_count(stat: &str) -> usize {
    stat.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
}

/// The share of the time between two readings that the CPUs were busy.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes) -> Option<u32> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    percent(busy, total)
}

/// Memory from `/proc/meminfo`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    pub fn used(self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

/// `MemTotal` and `MemAvailable` (kernels since 3.14 give it; without it memory cannot be
/// judged, as free memory alone ignores the page cache the kernel would give back).
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let rest = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    };
    Some(Memory {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
    })
}

/// The version number in a line a program printed for `--version`: the first word that looks
/// like `1.2` or `1.2.3-beta` (a leading `v` dropped). `git version 2.47.3` → `2.47.3`,
/// `1.0.12 (Claude Code)` → `1.0.12`, `codex-cli 0.58.0` → `0.58.0`.
pub fn version_number(line: &str) -> Option<&str> {
    line.split_whitespace().find_map(|word| {
        let word = word.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';' | '"' | '\''));
        let word = word.strip_prefix('v').unwrap_or(word);
        let (major, rest) = word.split_once('.')?;
        let starts_with_digit = rest.starts_with(|c: char| c.is_ascii_digit());
        (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) && starts_with_digit)
            .then_some(word)
    })
}

/// Git's version from `git --version`: the number and its (major, minor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitVersion {
    pub text: String,
    pub major: u32,
    pub minor: u32,
}

/// `git version 2.47.3`, `git version 2.39.5 (Apple Git-154)`, `git version 2.41.0.windows.1`.
pub fn parse_git_version(output: &str) -> Option<GitVersion> {
    let line = output.lines().find(|l| !l.trim().is_empty())?;
    let text = version_number(line.trim().strip_prefix("git version")?)?;
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some(GitVersion {
        text: text.to_owned(),
        major,
        minor,
    })
}

/// The line a program answered `--version` with: the first non-empty line of its output
/// (some print it on stderr), cut to a readable length.
pub fn version_line(stdout: &str, stderr: &str) -> Option<String> {
    let first = |text: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    first(stdout).or_else(|| first(stderr)).map(|l| shorten(&l))
}

/// At most 120 characters of `text`, for one-line details.
fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311718 3675 127 438 0 0 0
cpu1 1123 0 849 11313845 2614 0 18 0 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
";

    #[test]
    fn cpu_times_count_idle_and_iowait_as_not_busy() {
        let times = parse_cpu_times(STAT).unwrap();
        assert_eq!(times.total, 2255 + 34 + 2290 + 22625563 + 6290 + 127 + 456);
        assert_eq!(times.busy, 2255 + 34 + 2290 + 127 + 456);
        assert_eq!(cpu_count(STAT), 2);
    }

    #[test]
    fn cpu_times_leave_guest_time_out_of_the_total() {
        // guest (9th) and guest_nice (10th) are already part of user and nice.
        let times = parse_cpu_times("cpu  10 0 10 70 10 0 0 0 500 500\n").unwrap();
        assert_eq!(
            times,
            CpuTimes {
                busy: 20,
                total: 100
            }
        );
    }

    #[test]
    fn cpu_times_need_the_aggregate_line() {
        assert_eq!(parse_cpu_times("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_cpu_times("cpu  1 2 x 4\n"), None);
        assert_eq!(parse_cpu_times("cpu  1 2 3\n"), None);
        assert_eq!(
            parse_cpu_times("cpu  1 2 3 4\n"),
            Some(CpuTimes { busy: 6, total: 10 }),
            "kernels before 2.6 give four fields"
        );
    }

    #[test]
    fn cpu_percent_is_the_busy_share_between_two_readings() {
        let before = CpuTimes {
            busy: 100,
            total: 1000,
        };
        let after = CpuTimes {
            busy: 180,
            total: 1100,
        };
        assert_eq!(cpu_percent(before, after), Some(80));
        assert_eq!(cpu_percent(before, before), None, "no time passed");
        assert_eq!(cpu_percent(after, before), None, "the counters went back");
    }

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        let text = "MemTotal:       24684360 kB\nMemFree:        14535680 kB\n\
                    MemAvailable:   22640012 kB\nBuffers:          312084 kB\n";
        let memory = parse_meminfo(text).unwrap();
        assert_eq!(memory.total, 24684360 * 1024);
        assert_eq!(memory.available, 22640012 * 1024);
        assert_eq!(percent(memory.used(), memory.total), Some(8));
    }

    #[test]
    fn meminfo_without_mem_available_cannot_be_judged() {
        assert_eq!(
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\n"),
            None,
            "free memory alone ignores the page cache"
        );
        assert_eq!(
            parse_meminfo("MemTotalish: 5 kB\nMemTotal: 1000 kB\nMemAvailable: 10 MB\n"),
            None,
            "an unknown unit"
        );
    }

    #[test]
    fn version_numbers_are_found_in_what_agents_print() {
        for (line, number) in [
            ("1.0.12 (Claude Code)", "1.0.12"),
            ("codex-cli 0.58.0", "0.58.0"),
            ("aider 0.86.1", "0.86.1"),
            ("0.15.0", "0.15.0"),
            ("git version 2.47.3", "2.47.3"),
            ("tool v22.1.0", "22.1.0"),
            ("tool (1.2.0-beta.1)", "1.2.0-beta.1"),
        ] {
            assert_eq!(version_number(line), Some(number), "{line}");
        }
        assert_eq!(version_number("Claude Code"), None);
        assert_eq!(version_number("build 2024. ok"), None);
        assert_eq!(version_number("a.1 b1.x"), None);
    }

    #[test]
    fn git_versions_parse_with_vendor_suffixes() {
        let parsed = parse_git_version("git version 2.47.3\n").unwrap();
        assert_eq!(
            (parsed.text.as_str(), parsed.major, parsed.minor),
            ("2.47.3", 2, 47)
        );
        let apple = parse_git_version("git version 2.39.5 (Apple Git-154)").unwrap();
        assert_eq!((apple.major, apple.minor), (2, 39));
        let windows = parse_git_version("git version 2.41.0.windows.1").unwrap();
        assert_eq!((windows.major, windows.minor), (2, 41));
        assert_eq!(parse_git_version("hub version 2.14.2"), None);
        assert_eq!(parse_git_version("git version"), None);
    }

    #[test]
    fn the_version_line_is_the_first_line_printed_anywhere() {
        assert_eq!(
            version_line("\n  1.0.12 (Claude Code)  \nmore\n", "warning"),
            Some("1.0.12 (Claude Code)".to_owned())
        );
        assert_eq!(
            version_line("", "aider 0.86.1\n"),
            Some("aider 0.86.1".to_owned())
        );
        assert_eq!(version_line(" \n", ""), None);
        let long = "x".repeat(500);
        assert_eq!(version_line(&long, "").unwrap().chars().count(), 121);
    }
}
