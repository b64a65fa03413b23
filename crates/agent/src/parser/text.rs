//! Helpers shared by the parsers: recognising JSON lines and shortening text for people.

use serde_json::{Map, Value};

use super::AgentEvent;

/// Progress texts are cut to this many characters.
pub(crate) const PROGRESS_CHARS: usize = 200;
/// Final summaries are cut to this many characters: enough for a report, bounded for storage.
pub(crate) const SUMMARY_CHARS: usize = 4_000;
/// Error messages are cut to this many characters.
pub(crate) const MESSAGE_CHARS: usize = 2_000;

/// The line without its line ending.
pub(crate) fn strip_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// The line passed on untouched (but for its line ending).
pub(crate) fn output(line: &str) -> AgentEvent {
    AgentEvent::Output {
        text: strip_eol(line).to_owned(),
    }
}

/// The line as a JSON object, or `None` if it is anything else (text, broken JSON, an array).
pub(crate) fn json_object(line: &str) -> Option<Map<String, Value>> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    match serde_json::from_str(trimmed) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// A progress event with `text` shortened to one line of at most [`PROGRESS_CHARS`], or `None`
/// when there is nothing to show.
pub(crate) fn progress(text: &str) -> Option<AgentEvent> {
    let text = short(text);
    (!text.is_empty()).then_some(AgentEvent::Progress { text })
}

/// One line, whitespace collapsed, at most [`PROGRESS_CHARS`] characters.
pub(crate) fn short(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&one_line, PROGRESS_CHARS)
}

/// `text` cut to at most `max_chars` characters (never inside a character), ending in `…` when
/// something was cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => {
            format!("{}…", &text[..cut])
        }
        _ => text.to_owned(),
    }
}

/// A string field, or `None` if absent, not a string or empty.
pub(crate) fn str_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// A count field; absent, negative or not a number counts as zero.
pub(crate) fn count(object: &Map<String, Value>, key: &str) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Tool-call arguments that name a file.
const PATH_KEYS: [&str; 5] = [
    "file_path",
    "absolute_path",
    "notebook_path",
    "path",
    "dir_path",
];
/// Tool-call arguments that say what the call does, most telling first.
const DETAIL_KEYS: [&str; 6] = [
    "command",
    "pattern",
    "query",
    "url",
    "description",
    "prompt",
];

/// A tool call as a person reads it: `Edit src/api.rs` for a call on a file,
/// `Bash: cargo test` for one with a command or a query, the bare name otherwise.
pub(crate) fn tool_call(name: &str, input: Option<&Value>) -> String {
    let input = input.and_then(Value::as_object);
    let field =
        |keys: &[&str]| input.and_then(|input| keys.iter().find_map(|key| str_field(input, key)));
    if let Some(path) = field(&PATH_KEYS) {
        short(&format!("{name} {path}"))
    } else if let Some(detail) = field(&DETAIL_KEYS) {
        short(&format!("{name}: {detail}"))
    } else {
        short(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncate_keeps_short_text_whole() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("", 3), "");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééééé", 4), "ééé…");
        assert_eq!(truncate("日本語のテキスト", 3), "日本…");
        assert_eq!(truncate("🦀🦀🦀", 3), "🦀🦀🦀");
    }

    #[test]
    fn short_collapses_whitespace_and_cuts_at_200_characters() {
        assert_eq!(short("  two\n\nlines\t here "), "two lines here");
        let long = "é".repeat(500);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), PROGRESS_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn json_object_accepts_only_objects() {
        assert!(json_object(r#" {"type":"x"} "#).is_some());
        assert!(json_object("[1,2]").is_none());
        assert!(json_object(r#"{"type":"#).is_none());
        assert!(json_object("plain text").is_none());
    }

    #[test]
    fn tool_calls_read_like_what_they_do() {
        assert_eq!(
            tool_call(
                "Edit",
                Some(&json!({"file_path": "src/api.rs", "old_string": "a"}))
            ),
            "Edit src/api.rs"
        );
        assert_eq!(
            tool_call(
                "Bash",
                Some(&json!({"command": "cargo test", "description": "Run tests"}))
            ),
            "Bash: cargo test"
        );
        assert_eq!(
            tool_call("TodoWrite", Some(&json!({"todos": []}))),
            "TodoWrite"
        );
        assert_eq!(tool_call("Read", None), "Read");
    }
}
