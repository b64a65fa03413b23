//! A unified diff as git prints it, read into files and added lines.
//!
//! The input is the output of `git diff --no-color --no-ext-diff -M --unified=0 BASE TIP`; any
//! `--unified=N` works, and so does `--binary` (the patch data is skipped). Paths keep git's
//! `a/` and `b/` prefixes in the text: a caller whose git configuration may set `diff.noprefix`
//! or `diff.mnemonicPrefix` passes `--src-prefix=a/ --dst-prefix=b/`, and a diff without the
//! prefixes is rejected rather than read wrongly. The text must be UTF-8: a caller holding raw
//! bytes converts them with `String::from_utf8_lossy`, which changes no line structure.
//!
//! Parsing is strict about structure and says where it stopped: hunk line counts are checked
//! against the hunk headers, and an unknown header line is an error, so a truncated or garbled
//! diff is never mistaken for a smaller one.

use serde::{Deserialize, Serialize};

use crate::Error;

mod quote;

/// Every file a diff touches, in the order git printed them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub files: Vec<FileDiff>,
}

/// One file's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    /// The path before the change, relative to the repository root; `None` for an added file.
    pub old_path: Option<String>,
    /// The path after the change; `None` for a deleted file.
    pub new_path: Option<String>,
    pub status: FileStatus,
    /// Git found the file binary: it has no lines, and its content is never scanned.
    pub binary: bool,
    /// The lines the change adds, with their line numbers in the new file.
    pub added: Vec<AddedLine>,
    pub lines_added: u32,
    pub lines_removed: u32,
}

impl FileDiff {
    /// The path that names the file after the change, or before it for a deleted file.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or_default()
    }
}

/// What happened to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Added,
    /// Content changed (possibly together with the file mode).
    Modified,
    Deleted,
    /// Moved, possibly with edits (`-M`).
    Renamed,
    /// Copied from another file, possibly with edits (`-C`).
    Copied,
    /// Only the file mode changed (for example the executable bit).
    ModeChanged,
}

/// One added line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedLine {
    /// 1-based line number in the new file.
    pub line: u32,
    /// The line without its leading `+` and its line ending.
    pub text: String,
}

/// The size of a diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStats {
    /// Files touched, binary ones included.
    pub files: u32,
    pub lines_added: u32,
    pub lines_removed: u32,
}

impl DiffStats {
    /// Lines added plus lines removed: what the size limit counts.
    pub fn lines_changed(&self) -> u32 {
        self.lines_added.saturating_add(self.lines_removed)
    }
}

impl Diff {
    /// Parses the output of `git diff --no-color --no-ext-diff -M --unified=0 BASE TIP` (any
    /// `--unified=N` works). Empty text is an empty diff. Malformed text is an
    /// [`Error::Parse`] naming the line and what was expected there.
    pub fn parse(text: &str) -> Result<Diff, Error> {
        Parser::new(text).parse()
    }

    /// Files touched and lines added and removed, over the whole diff.
    pub fn stats(&self) -> DiffStats {
        let mut stats = DiffStats {
            files: u32::try_from(self.files.len()).unwrap_or(u32::MAX),
            ..DiffStats::default()
        };
        for file in &self.files {
            stats.lines_added = stats.lines_added.saturating_add(file.lines_added);
            stats.lines_removed = stats.lines_removed.saturating_add(file.lines_removed);
        }
        stats
    }
}

/// The longest part of an offending line quoted back in a parse error. Header lines are quoted;
/// content lines never are, since they may hold exactly what the secret scan guards against.
const QUOTE_LIMIT: usize = 60;

struct Parser<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>,
}

/// What the header lines of one file said.
#[derive(Default)]
struct Header {
    /// Paths from the `diff --git` line, when they could be told apart.
    git_paths: Option<(String, String)>,
    minus: Option<Option<String>>,
    plus: Option<Option<String>>,
    rename: (Option<String>, Option<String>),
    copy: (Option<String>, Option<String>),
    new_file: bool,
    deleted_file: bool,
    mode_change: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().enumerate().peekable(),
        }
    }

    fn parse(mut self) -> Result<Diff, Error> {
        let mut files = Vec::new();
        while let Some((index, line)) = self.lines.next() {
            let number = line_number(index);
            let Some(rest) = line.strip_prefix("diff --git ") else {
                return Err(parse_error(
                    number,
                    "`diff --git` starting a file",
                    quoted(line),
                ));
            };
            files.push(self.file(number, rest)?);
        }
        Ok(Diff { files })
    }

    /// One file: the header lines after `diff --git`, then its hunks or binary marker.
    fn file(&mut self, start: u32, git_line: &str) -> Result<FileDiff, Error> {
        let mut header = Header {
            git_paths: quote::git_line_paths(git_line),
            ..Header::default()
        };
        let mut binary = false;
        let mut hunks = Hunks::default();
        while let Some(&(index, line)) = self.lines.peek() {
            let number = line_number(index);
            if line.starts_with("diff --git ") {
                break;
            }
            self.lines.next();
            if line.starts_with("@@") {
                if header.plus.is_none() {
                    return Err(parse_error(
                        number,
                        "`---` and `+++` lines before the first hunk",
                        quoted(line),
                    ));
                }
                self.hunk(number, line, &mut hunks)?;
            } else if hunks.any || binary {
                return Err(parse_error(
                    number,
                    "`@@` starting a hunk, `diff --git` starting a file, or the end of the diff",
                    quoted(line),
                ));
            } else if let Some(path) = line.strip_prefix("--- ") {
                header.minus = Some(side_path(number, path, "a/")?);
            } else if let Some(path) = line.strip_prefix("+++ ") {
                if header.minus.is_none() {
                    return Err(parse_error(
                        number,
                        "a `---` line before `+++`",
                        quoted(line),
                    ));
                }
                header.plus = Some(side_path(number, path, "b/")?);
            } else if line.starts_with("Binary files ") && line.ends_with(" differ") {
                binary = true;
            } else if line == "GIT binary patch" {
                binary = true;
                self.skip_binary_patch();
            } else {
                header_line(number, line, &mut header)?;
            }
        }
        finish(start, header, binary, hunks)
    }

    /// Reads one hunk's lines, as many as its header announces.
    fn hunk(&mut self, number: u32, line: &str, hunks: &mut Hunks) -> Result<(), Error> {
        let Some(range) = HunkRange::parse(line) else {
            return Err(parse_error(
                number,
                "a hunk header `@@ -OLD[,COUNT] +NEW[,COUNT] @@`",
                quoted(line),
            ));
        };
        hunks.any = true;
        let (mut old_left, mut new_left) = (range.old_count, range.new_count);
        let mut new_line = range.new_start;
        while old_left > 0 || new_left > 0 {
            let Some((index, text)) = self.lines.next() else {
                return Err(parse_error(
                    number,
                    "as many hunk lines as the hunk header announces",
                    format!(
                        "the end of the diff with {old_left} old and {new_left} new lines missing"
                    ),
                ));
            };
            let number = line_number(index);
            let mut chars = text.chars();
            let (old, new) = match chars.next() {
                Some('+') if new_left > 0 => (0, 1),
                Some('-') if old_left > 0 => (1, 0),
                Some(' ') if old_left > 0 && new_left > 0 => (1, 1),
                // Some tools strip the single space of an empty context line.
                None if old_left > 0 && new_left > 0 => (1, 1),
                Some('\\') => continue,
                first => {
                    return Err(parse_error(
                        number,
                        hunk_expectation(old_left, new_left),
                        match first {
                            None => "an empty line".to_owned(),
                            Some(c) => format!("a line starting with `{}`", c.escape_debug()),
                        },
                    ));
                }
            };
            if new == 1 && old == 0 {
                hunks.added.push(AddedLine {
                    line: new_line,
                    text: chars.as_str().to_owned(),
                });
                hunks.lines_added = hunks.lines_added.saturating_add(1);
            }
            if old == 1 && new == 0 {
                hunks.lines_removed = hunks.lines_removed.saturating_add(1);
            }
            old_left -= old;
            new_left -= new;
            new_line = new_line.saturating_add(new);
        }
        // "\ No newline at end of file" may follow the last line of a hunk.
        while self.lines.peek().is_some_and(|(_, l)| l.starts_with('\\')) {
            self.lines.next();
        }
        Ok(())
    }

    /// Skips the base85 data of a `--binary` patch: it runs to the next file.
    fn skip_binary_patch(&mut self) {
        while self
            .lines
            .peek()
            .is_some_and(|(_, l)| !l.starts_with("diff --git "))
        {
            self.lines.next();
        }
    }
}

/// Lines and counts gathered from one file's hunks.
#[derive(Default)]
struct Hunks {
    any: bool,
    added: Vec<AddedLine>,
    lines_added: u32,
    lines_removed: u32,
}

/// The ranges of a hunk header `@@ -OLD[,COUNT] +NEW[,COUNT] @@ ...`.
struct HunkRange {
    old_count: u32,
    new_start: u32,
    new_count: u32,
}

impl HunkRange {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("@@ -")?;
        let (ranges, _section) = rest.split_once(" @@")?;
        let (old, new) = ranges.split_once(" +")?;
        let (_old_start, old_count) = range(old)?;
        let (new_start, new_count) = range(new)?;
        Some(Self {
            old_count,
            new_start,
            new_count,
        })
    }
}

/// `START[,COUNT]`; a missing count is 1.
fn range(text: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u32>().ok()
        }
    };
    match text.split_once(',') {
        Some((start, count)) => Some((digits(start)?, digits(count)?)),
        None => Some((digits(text)?, 1)),
    }
}

fn hunk_expectation(old_left: u32, new_left: u32) -> &'static str {
    match (old_left > 0, new_left > 0) {
        (true, true) => "a hunk line starting with ` `, `-`, `+` or `\\`",
        (true, false) => "a removed line starting with `-` (the hunk header announces more)",
        _ => "an added line starting with `+` (the hunk header announces more)",
    }
}

/// Reads one extended header line into `header`.
fn header_line(number: u32, line: &str, header: &mut Header) -> Result<(), Error> {
    let path = |text: &str| {
        quote::path(text).ok_or_else(|| parse_error(number, "a path, quoted or not", quoted(line)))
    };
    if let Some(rest) = line.strip_prefix("rename from ") {
        header.rename.0 = Some(path(rest)?);
    } else if let Some(rest) = line.strip_prefix("rename to ") {
        header.rename.1 = Some(path(rest)?);
    } else if let Some(rest) = line.strip_prefix("copy from ") {
        header.copy.0 = Some(path(rest)?);
    } else if let Some(rest) = line.strip_prefix("copy to ") {
        header.copy.1 = Some(path(rest)?);
    } else if line.starts_with("new file mode ") {
        header.new_file = true;
    } else if line.starts_with("deleted file mode ") {
        header.deleted_file = true;
    } else if line.starts_with("old mode ") || line.starts_with("new mode ") {
        header.mode_change = true;
    } else if line.starts_with("index ")
        || line.starts_with("similarity index ")
        || line.starts_with("dissimilarity index ")
    {
        // Blob ids and similarity figures: nothing a guard uses.
    } else {
        return Err(parse_error(
            number,
            "a file header line (`index`, `new file mode`, `rename from`, `---`, ...)",
            quoted(line),
        ));
    }
    Ok(())
}

/// The path of a `---` or `+++` line: `/dev/null` (no file) or `PREFIX` and a path.
fn side_path(number: u32, text: &str, prefix: &'static str) -> Result<Option<String>, Error> {
    // Git ends a name holding a space with a tab, so that it can be told from a timestamp.
    let text = text.strip_suffix('\t').unwrap_or(text);
    if text == "/dev/null" {
        return Ok(None);
    }
    let expected = if prefix == "a/" {
        "`/dev/null` or a path starting with `a/`"
    } else {
        "`/dev/null` or a path starting with `b/`"
    };
    quote::path(text)
        .and_then(|p| p.strip_prefix(prefix).map(str::to_owned))
        .filter(|p| !p.is_empty())
        .map(Some)
        .ok_or_else(|| parse_error(number, expected, quoted(text)))
}

/// Settles the paths and status of a file once its header and hunks are read.
fn finish(start: u32, header: Header, binary: bool, hunks: Hunks) -> Result<FileDiff, Error> {
    let unnamed = || {
        parse_error(
            start,
            "`diff --git a/PATH b/PATH`, or header lines naming the paths",
            "a file whose paths cannot be told apart".to_owned(),
        )
    };
    let git_old = header.git_paths.as_ref().map(|(a, _)| a.clone());
    let git_new = header.git_paths.as_ref().map(|(_, b)| b.clone());
    for (pair, expected) in [
        (&header.rename, "both `rename from` and `rename to`"),
        (&header.copy, "both `copy from` and `copy to`"),
    ] {
        if pair.0.is_some() != pair.1.is_some() {
            return Err(parse_error(
                start,
                expected,
                "only one of them in the file's header".to_owned(),
            ));
        }
    }
    let (status, old_path, new_path) = if let (Some(from), Some(to)) = header.rename {
        (FileStatus::Renamed, Some(from), Some(to))
    } else if let (Some(from), Some(to)) = header.copy {
        (FileStatus::Copied, Some(from), Some(to))
    } else if header.new_file {
        let path = header.plus.flatten().or(git_new).ok_or_else(unnamed)?;
        (FileStatus::Added, None, Some(path))
    } else if header.deleted_file {
        let path = header.minus.flatten().or(git_old).ok_or_else(unnamed)?;
        (FileStatus::Deleted, Some(path), None)
    } else {
        let old = header.minus.flatten().or(git_old).ok_or_else(unnamed)?;
        let new = header.plus.flatten().or(git_new).ok_or_else(unnamed)?;
        let status = if header.mode_change && !hunks.any && !binary {
            FileStatus::ModeChanged
        } else {
            FileStatus::Modified
        };
        (status, Some(old), Some(new))
    };
    Ok(FileDiff {
        old_path,
        new_path,
        status,
        binary,
        added: hunks.added,
        lines_added: hunks.lines_added,
        lines_removed: hunks.lines_removed,
    })
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX)
}

fn parse_error(line: u32, expected: &'static str, found: String) -> Error {
    Error::Parse {
        line,
        expected,
        found,
    }
}

/// A header line quoted back in an error, cut to [`QUOTE_LIMIT`] characters.
fn quoted(line: &str) -> String {
    if line.is_empty() {
        return "an empty line".to_owned();
    }
    match line.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("`{}…`", &line[..cut]),
        None => format!("`{line}`"),
    }
}

#[cfg(test)]
mod tests;
