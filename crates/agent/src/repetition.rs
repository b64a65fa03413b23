//! Noticing an agent stuck in a loop: the same line, or the same short cycle of lines, over and
//! over.
//!
//! Lines are compared by shape, not by bytes: timestamps, long numbers, decimals, hex and other
//! generated ids are noise that changes on every line of a loop, so they are blanked out before
//! comparing. Small whole numbers are kept apart: when the only change from one line to the
//! next is one of them going up ("test 1 ok", "test 2 ok"; "41%", "42%"), the output is counting
//! progress, not repeating itself, and the streak starts over.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Lines shown in a reason are cut to this many characters.
const SHOWN_CHARS: usize = 120;
/// The longest cycle looked for.
const LONGEST_CYCLE: usize = 3;

/// Watches an agent's output, line by line, for repetition.
#[derive(Clone, Debug)]
pub struct Repetition {
    threshold: usize,
    /// The last few meaningful lines, oldest first.
    recent: VecDeque<Shape>,
    /// How many lines in a row have been the same, the current one included.
    same: usize,
    /// For cycles of 2 and 3 lines: how many lines in a row repeated the line that many back.
    cycles: [usize; LONGEST_CYCLE - 1],
}

impl Default for Repetition {
    fn default() -> Self {
        Self::new(Self::DEFAULT_THRESHOLD)
    }
}

impl Repetition {
    /// How many repetitions in a row count as a loop, unless configured otherwise.
    pub const DEFAULT_THRESHOLD: usize = 20;

    /// A detector that reports a line, or a cycle of two or three lines, seen `threshold` times
    /// in a row. A threshold below 2 is taken as 2: a line seen once is not a repetition.
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold: threshold.max(2),
            recent: VecDeque::with_capacity(LONGEST_CYCLE + 1),
            same: 0,
            cycles: [0; LONGEST_CYCLE - 1],
        }
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Takes the next line of output. Returns why the agent looks stuck when this line
    /// completes `threshold` repetitions (once per streak: the lines after it return `None`
    /// until the streak breaks and a new one reaches the threshold). Blank lines are ignored.
    pub fn observe(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let shape = Shape::of(line);

        self.same = match self.recent.back() {
            Some(previous) if previous.repeats(&shape) => self.same + 1,
            _ => 1,
        };
        for (index, matched) in self.cycles.iter_mut().enumerate() {
            let period = index + 2;
            let back = self
                .recent
                .len()
                .checked_sub(period)
                .and_then(|at| self.recent.get(at));
            *matched = match back {
                Some(earlier) if earlier.repeats(&shape) => *matched + 1,
                _ => 0,
            };
        }
        self.recent.push_back(shape);
        if self.recent.len() > LONGEST_CYCLE {
            self.recent.pop_front();
        }

        if self.same == self.threshold {
            return Some(format!(
                "the same line {} times in a row: {}",
                self.threshold,
                self.recent.back().map_or("", |shape| shape.shown.as_str())
            ));
        }
        for (index, matched) in self.cycles.iter().enumerate() {
            let period = index + 2;
            if *matched != (self.threshold - 1) * period {
                continue;
            }
            let cycle: Vec<&Shape> = self
                .recent
                .iter()
                .skip(self.recent.len() - period)
                .collect();
            // A run of one line also repeats the line two back; that is the case above.
            if cycle.iter().all(|shape| shape.key == cycle[0].key) {
                continue;
            }
            let shown: Vec<&str> = cycle.iter().map(|shape| shape.shown.as_str()).collect();
            return Some(format!(
                "the same {period} lines {} times in a row: {}",
                self.threshold,
                shown.join(" / ")
            ));
        }
        None
    }
}

/// A line reduced to what a loop would repeat.
#[derive(Clone, Debug)]
struct Shape {
    /// Hash and length of the normalised text: lines can be long, and only equality matters.
    key: (u64, usize),
    /// The small whole numbers blanked out of the text, in order.
    counters: Vec<u64>,
    /// The line as shown in a reason.
    shown: String,
}

impl Shape {
    fn of(line: &str) -> Self {
        let (normal, counters) = normalise(line);
        let mut hasher = DefaultHasher::new();
        normal.hash(&mut hasher);
        Self {
            key: (hasher.finish(), normal.len()),
            counters,
            shown: shown(line),
        }
    }

    /// Whether `next` repeats this line: the same shape, and not a counter stepping up.
    fn repeats(&self, next: &Shape) -> bool {
        if self.key != next.key {
            return false;
        }
        let changed: Vec<usize> = (0..self.counters.len().min(next.counters.len()))
            .filter(|&at| self.counters[at] != next.counters[at])
            .collect();
        let counting = self.counters.len() == next.counters.len()
            && changed.len() == 1
            && next.counters[changed[0]] > self.counters[changed[0]];
        !counting
    }
}

fn shown(line: &str) -> String {
    match line.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// The text with noise blanked out, and the small whole numbers it held.
///
/// Words are runs of ASCII letters and digits. A word of digits becomes `#`; it is kept as a
/// counter when it has at most 4 digits and touches no `:` (a clock), no `.` followed or
/// preceded by a digit (a decimal, a version) and no `-` between digits (a date). A word of
/// letters and digits becomes `<id>` when it is all hex digits and at least 4 long, or at least
/// 8 long; otherwise its digits become `#`. Whitespace runs become one space.
fn normalise(line: &str) -> (String, Vec<u64>) {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut counters = Vec::new();
    let mut at = 0;
    while at < line.len() {
        let byte = bytes[at];
        if byte.is_ascii_alphanumeric() {
            let end = at
                + bytes[at..]
                    .iter()
                    .position(|b| !b.is_ascii_alphanumeric())
                    .unwrap_or(bytes.len() - at);
            let word = &line[at..end];
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(end).copied();
            if word.bytes().all(|b| b.is_ascii_digit()) {
                out.push('#');
                if let Some(value) = counter(word, bytes, at, end, before, after) {
                    counters.push(value);
                }
            } else {
                word_shape(word, &mut out);
            }
            at = end;
        } else if byte.is_ascii_whitespace() {
            out.push(' ');
            while at < line.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
        } else {
            // Copy one whole character.
            let len = line[at..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&line[at..at + len]);
            at += len;
        }
    }
    (out, counters)
}

/// The value of a digit word that reads as a counter rather than as noise.
fn counter(
    word: &str,
    bytes: &[u8],
    start: usize,
    end: usize,
    before: Option<u8>,
    after: Option<u8>,
) -> Option<u64> {
    let digit_at = |index: Option<usize>| {
        index
            .and_then(|index| bytes.get(index))
            .is_some_and(u8::is_ascii_digit)
    };
    let clock = before == Some(b':') || after == Some(b':');
    let decimal = (before == Some(b'.') && digit_at(start.checked_sub(2)))
        || (after == Some(b'.') && digit_at(Some(end + 1)));
    let date = (before == Some(b'-') && digit_at(start.checked_sub(2)))
        || (after == Some(b'-') && digit_at(Some(end + 1)));
    if word.len() > 4 || clock || decimal || date {
        return None;
    }
    word.parse().ok()
}

fn word_shape(word: &str, out: &mut String) {
    let has_digit = word.bytes().any(|b| b.is_ascii_digit());
    let all_hex = word.bytes().all(|b| b.is_ascii_hexdigit());
    if has_digit && ((all_hex && word.len() >= 4) || word.len() >= 8) {
        out.push_str("<id>");
        return;
    }
    let mut in_digits = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(line: &str) -> String {
        normalise(line).0
    }

    #[test]
    fn timestamps_ids_and_long_numbers_are_noise() {
        assert_eq!(
            normal("2025-01-02T03:04:05.123Z retry 550e8400-e29b-41d4-a716-446655440000 pid 48213"),
            "#-#-#T#:#:#.#Z retry <id>-<id>-<id>-<id>-# pid #"
        );
        assert_eq!(normal("msg_01XFDUDYJgAACzvnptvVoYEL"), "msg_<id>");
        assert_eq!(normal("commit a3f9c2e1"), "commit <id>");
    }

    #[test]
    fn short_words_keep_their_letters() {
        assert_eq!(normal("utf8 v1 x86_64"), "utf# v# x#_#");
        assert_eq!(normal("  spaced \t out  "), " spaced out ");
    }

    #[test]
    fn only_small_standalone_integers_are_counters() {
        assert_eq!(normalise("test 12 of 40").1, [12, 40]);
        assert_eq!(normalise("at 12:30:01").1, Vec::<u64>::new());
        assert_eq!(normalise("took 0.52s").1, Vec::<u64>::new());
        assert_eq!(normalise("on 2025-01-02").1, Vec::<u64>::new());
        assert_eq!(normalise("pid 48213").1, Vec::<u64>::new());
    }

    #[test]
    fn non_ascii_text_is_copied_whole() {
        assert_eq!(normal("テスト 3 件"), "テスト # 件");
    }

    /// Feeds every line; the reasons given, with the 1-based line that gave each.
    fn trips(detector: &mut Repetition, lines: &[String]) -> Vec<(usize, String)> {
        lines
            .iter()
            .enumerate()
            .filter_map(|(at, line)| detector.observe(line).map(|reason| (at + 1, reason)))
            .collect()
    }

    #[test]
    fn the_same_line_trips_at_the_threshold() {
        let lines = vec!["error: could not compile `api`".to_owned(); 25];
        assert_eq!(
            trips(&mut Repetition::default(), &lines),
            [(
                20,
                "the same line 20 times in a row: error: could not compile `api`".to_owned()
            )]
        );
    }

    #[test]
    fn nineteen_repeats_do_not_trip() {
        let lines = vec!["Waiting for the lock".to_owned(); 19];
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
    }

    #[test]
    fn timestamps_and_ids_do_not_hide_a_repeat() {
        let lines: Vec<String> = (0..20)
            .map(|n| {
                format!(
                    r#"{{"ts":"2025-06-01T10:{n:02}:{:02}.{}Z","id":"toolu_01{n:02}Xq9vLmP3aZk","took_ms":{},"msg":"retrying request"}}"#,
                    (n * 7) % 60,
                    100 + n * 3,
                    40_000 + n * 11
                )
            })
            .collect();
        let reasons = trips(&mut Repetition::default(), &lines);
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].0, 20);
    }

    #[test]
    fn numbers_changing_at_random_still_repeat() {
        let lines: Vec<String> = (0..20)
            .map(|n| format!("usage: input {} output {}", 900 - n * 7, 40 + (n * 13) % 9))
            .collect();
        assert_eq!(trips(&mut Repetition::default(), &lines).len(), 1);
    }

    #[test]
    fn blank_lines_are_ignored() {
        let lines: Vec<String> = (0..40)
            .map(|n| {
                if n % 2 == 0 {
                    "stuck".to_owned()
                } else {
                    "  ".to_owned()
                }
            })
            .collect();
        assert_eq!(
            trips(&mut Repetition::default(), &lines),
            [(39, "the same line 20 times in a row: stuck".to_owned())]
        );
    }

    #[test]
    fn a_cycle_of_two_lines_trips() {
        let lines: Vec<String> = (0..60)
            .map(|n| {
                if n % 2 == 0 {
                    "Bash: cargo test".to_owned()
                } else {
                    "Edit src/api.rs".to_owned()
                }
            })
            .collect();
        assert_eq!(
            trips(&mut Repetition::default(), &lines),
            [(
                40,
                "the same 2 lines 20 times in a row: Bash: cargo test / Edit src/api.rs".to_owned()
            )]
        );
    }

    #[test]
    fn a_cycle_of_three_lines_trips() {
        let cycle = ["Read src/lib.rs", "Edit src/lib.rs", "Bash: cargo build"];
        let lines: Vec<String> = (0..90).map(|n| cycle[n % 3].to_owned()).collect();
        let reasons = trips(&mut Repetition::new(5), &lines);
        assert_eq!(
            reasons,
            [(
                15,
                "the same 3 lines 5 times in a row: Read src/lib.rs / Edit src/lib.rs / Bash: cargo build"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn the_threshold_is_configurable() {
        let lines = vec!["again".to_owned(); 3];
        assert_eq!(trips(&mut Repetition::new(3), &lines).len(), 1);
        assert_eq!(trips(&mut Repetition::new(4), &lines).len(), 0);
    }

    #[test]
    fn a_broken_streak_starts_over() {
        let mut lines = vec!["same".to_owned(); 15];
        lines.push("different".to_owned());
        lines.extend(vec!["same".to_owned(); 15]);
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
    }

    #[test]
    fn a_progress_counter_does_not_trip() {
        let lines: Vec<String> = (1..=60).map(|n| format!("test {n} ok")).collect();
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
        let percent: Vec<String> = (0..=100)
            .step_by(2)
            .map(|n| format!("Downloading {n}%"))
            .collect();
        assert_eq!(trips(&mut Repetition::default(), &percent), []);
    }

    #[test]
    fn a_counter_between_other_lines_does_not_trip() {
        let lines: Vec<String> = (1..=60)
            .flat_map(|n| [format!("Running case {n}"), "ok".to_owned()])
            .collect();
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
    }

    #[test]
    fn tests_with_different_names_do_not_trip() {
        let lines: Vec<String> = (1..=60)
            .map(|n| {
                format!(
                    "test {n} ok: parses_case_{}",
                    ["empty", "long", "utf8", "nested"][n % 4]
                )
            })
            .collect();
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
        let cargo_tests: Vec<String> = [
            "plan::tests::rejects_a_cycle",
            "plan::tests::rejects_an_unknown_dependency",
            "plan::tests::accepts_a_diamond",
            "state::tests::a_done_deliverable_stays_done",
            "state::tests::cancel_is_final",
        ]
        .iter()
        .cycle()
        .take(40)
        .enumerate()
        .map(|(n, name)| format!("test {name}_{n} ... ok"))
        .collect();
        assert_eq!(trips(&mut Repetition::default(), &cargo_tests), []);
    }

    #[test]
    fn cargo_build_output_does_not_trip() {
        let crates = [
            "proc-macro2 v1.0.107",
            "unicode-ident v1.0.27",
            "quote v1.0.47",
            "serde_core v1.0.229",
            "syn v3.0.9",
            "thiserror v2.0.21",
            "serde_json v1.0.154",
            "serde v1.0.229",
            "itoa v1.0.18",
            "memchr v2.8.3",
            "thiserror-impl v2.0.21",
            "serde_derive v1.0.229",
            "tokio v1.54.0",
            "axum v0.8.9",
            "sqlx v0.9.0",
            "hyper v1.7.0",
            "tower v0.5.2",
            "bytes v1.10.1",
            "libc v0.2.177",
            "cfg-if v1.0.4",
            "once_cell v1.21.3",
            "pin-project-lite v0.2.16",
        ];
        let mut lines: Vec<String> = crates
            .iter()
            .map(|name| format!("   Compiling {name}"))
            .collect();
        lines.push(
            "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 52.83s".to_owned(),
        );
        assert_eq!(trips(&mut Repetition::default(), &lines), []);
        let checking: Vec<String> = crates
            .iter()
            .map(|name| format!("    Checking {name}"))
            .collect();
        assert_eq!(trips(&mut Repetition::new(3), &checking), []);
    }

    #[test]
    fn a_long_line_is_shown_shortened() {
        let line = "x".repeat(500);
        let lines = vec![line; 2];
        let reasons = trips(&mut Repetition::new(2), &lines);
        assert_eq!(
            reasons[0].1,
            format!("the same line 2 times in a row: {}…", "x".repeat(120))
        );
    }

    #[test]
    fn a_threshold_below_two_is_two() {
        assert_eq!(Repetition::new(0).threshold(), 2);
        assert_eq!(Repetition::default().threshold(), 20);
    }
}
