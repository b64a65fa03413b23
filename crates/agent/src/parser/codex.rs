//! Codex CLI's `codex exec --json` JSONL (codex-rs/exec/src/exec_events.rs): `thread.started`,
//! `turn.started`, `item.started` / `item.updated` / `item.completed` with items
//! `agent_message`, `reasoning`, `command_execution`, `file_change`, `mcp_tool_call`,
//! `web_search`, `todo_list` and `error`; then `turn.completed` with usage, or `turn.failed`;
//! and `error` for a fatal stream error.
//!
//! The docs call `turn.completed`'s usage the turn's, but the source fills it from the
//! thread's running total (`usage_from_last_total`): it is treated as a total, and only its
//! growth is reported. With one turn per `codex exec`, both readings agree.
//! As in OpenAI's API, `input_tokens` includes `cached_input_tokens`.

use serde_json::{Map, Value};

use super::meter::Meter;
use super::text::{self, count, str_field};
use super::{AgentEvent, Parser, Usage};

#[derive(Debug)]
pub(crate) struct Codex {
    meter: Meter,
    /// The latest agent message, the turn's summary.
    last_message: Option<String>,
}

impl Codex {
    pub(crate) fn new(meter: Meter) -> Self {
        Self {
            meter,
            last_message: None,
        }
    }

    fn item_started(&mut self, item: &Map<String, Value>) -> Vec<AgentEvent> {
        let progress = match str_field(item, "type") {
            Some("command_execution") => str_field(item, "command")
                .map(|command| format!("Shell: {}", unwrap_shell(command))),
            Some("mcp_tool_call") => Some(format!(
                "{}.{}",
                str_field(item, "server").unwrap_or("mcp"),
                str_field(item, "tool").unwrap_or("tool")
            )),
            _ => None,
        };
        progress
            .as_deref()
            .and_then(text::progress)
            .into_iter()
            .collect()
    }

    fn item_completed(&mut self, item: &Map<String, Value>) -> Vec<AgentEvent> {
        let status = str_field(item, "status");
        let progress = match str_field(item, "type") {
            Some("agent_message") => {
                let message = str_field(item, "text");
                if let Some(message) = message {
                    self.last_message = Some(message.to_owned());
                }
                message.map(str::to_owned)
            }
            Some("command_execution") => {
                let command = unwrap_shell(str_field(item, "command").unwrap_or_default());
                match item.get("exit_code").and_then(Value::as_i64) {
                    Some(code) if code != 0 => Some(format!("Shell exited {code}: {command}")),
                    _ if matches!(status, Some("failed" | "declined")) => {
                        Some(format!("Shell {}: {command}", status.unwrap_or_default()))
                    }
                    _ => None,
                }
            }
            Some("file_change") => {
                let changes = file_changes(item);
                if status == Some("failed") {
                    Some(format!("Edit failed: {changes}"))
                } else {
                    Some(changes)
                }
            }
            Some("mcp_tool_call") if status == Some("failed") => Some(format!(
                "{}.{} failed",
                str_field(item, "server").unwrap_or("mcp"),
                str_field(item, "tool").unwrap_or("tool")
            )),
            Some("web_search") => str_field(item, "query").map(|query| format!("Search: {query}")),
            // A non-fatal error: a warning the run goes on after.
            Some("error") => {
                str_field(item, "message").map(|message| format!("Warning: {message}"))
            }
            // Reasoning summaries and to-do lists are not progress of the work itself.
            _ => None,
        };
        progress
            .as_deref()
            .and_then(text::progress)
            .into_iter()
            .collect()
    }

    fn turn_completed(&mut self, line: &Map<String, Value>) -> Vec<AgentEvent> {
        let usage = line.get("usage").and_then(Value::as_object);
        let mut events = Vec::new();
        if let Some(usage) = usage {
            let input = count(usage, "input_tokens");
            let cached = count(usage, "cached_input_tokens");
            events.extend(self.meter.total(Usage {
                model: None,
                input_tokens: input.saturating_sub(cached),
                output_tokens: count(usage, "output_tokens"),
                cache_read_tokens: cached,
                cache_write_tokens: 0,
                cost_usd: None,
            }));
        }
        events.push(AgentEvent::Finished {
            success: true,
            summary: self
                .last_message
                .as_deref()
                .map(|message| text::truncate(message, text::SUMMARY_CHARS)),
        });
        events
    }
}

impl Parser for Codex {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let Some(object) = text::json_object(line) else {
            return vec![text::output(line)];
        };
        let item = object.get("item").and_then(Value::as_object);
        match (str_field(&object, "type"), item) {
            (Some("item.started"), Some(item)) => self.item_started(item),
            (Some("item.completed"), Some(item)) => self.item_completed(item),
            (Some("turn.completed"), _) => self.turn_completed(&object),
            (Some("turn.failed"), _) => {
                let message = object
                    .get("error")
                    .and_then(Value::as_object)
                    .and_then(|error| str_field(error, "message"))
                    .unwrap_or("the turn failed");
                vec![
                    failed(message),
                    AgentEvent::Finished {
                        success: false,
                        summary: None,
                    },
                ]
            }
            (Some("error"), _) => {
                vec![failed(
                    str_field(&object, "message").unwrap_or("stream error"),
                )]
            }
            (None, _) => vec![text::output(line)],
            // thread.started, turn.started, item.updated, plan deltas and types added later.
            _ => Vec::new(),
        }
    }

    fn finish(&mut self) -> Vec<AgentEvent> {
        Vec::new()
    }
}

fn failed(message: &str) -> AgentEvent {
    AgentEvent::Failed {
        message: text::truncate(message, text::MESSAGE_CHARS),
    }
}

/// `bash -lc 'cargo test'` reads better as `cargo test`.
fn unwrap_shell(command: &str) -> &str {
    let Some(inner) = command.strip_prefix("bash -lc ") else {
        return command;
    };
    for quote in ['\'', '"'] {
        if let Some(unquoted) = inner
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return unquoted;
        }
    }
    inner
}

/// `Edit src/a.rs, Add src/b.rs`.
fn file_changes(item: &Map<String, Value>) -> String {
    let changes = item.get("changes").and_then(Value::as_array);
    let described: Vec<String> = changes
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|change| {
            let verb = match str_field(change, "kind") {
                Some("add") => "Add",
                Some("delete") => "Delete",
                _ => "Edit",
            };
            format!("{verb} {}", str_field(change, "path").unwrap_or("?"))
        })
        .collect();
    if described.is_empty() {
        "Edit files".to_owned()
    } else {
        described.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_wrappers_are_unwrapped() {
        assert_eq!(unwrap_shell("bash -lc 'cargo test'"), "cargo test");
        assert_eq!(unwrap_shell("bash -lc \"ls -la\""), "ls -la");
        assert_eq!(unwrap_shell("bash -lc ls"), "ls");
        assert_eq!(unwrap_shell("cargo build"), "cargo build");
    }
}
