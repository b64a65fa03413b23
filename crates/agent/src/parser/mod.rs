//! Reading an agent's output as it streams, one line at a time.
//!
//! Each agent prints its own format; a [`Parser`] turns it into [`AgentEvent`]s. A line a
//! parser does not recognise is passed on as [`AgentEvent::Output`]; no line ever makes a parser
//! fail, since the agent's output is not ours to validate and a run must not stop over a log
//! line.

mod aider;
mod claude;
mod codex;
mod gemini;
mod meter;
mod text;

use crate::{AgentKind, Prices};

/// What kamachiq learns from an agent's output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Tokens and cost consumed since the previous `Usage` event: deltas, never running
    /// totals, so the ledger can add them up and a budget can stop the agent mid-stream.
    Usage(Usage),
    /// Something a person watching wants to see: the agent's message, a tool call
    /// ("Edit src/api.rs", "Bash: cargo test"), a file change. Short: at most 200 characters.
    Progress { text: String },
    /// The agent reported its final result.
    Finished {
        success: bool,
        summary: Option<String>,
    },
    /// The agent reported an error (it may still exit 0).
    Failed { message: String },
    /// A line that is not part of the structured stream, as it was printed.
    Output { text: String },
}

/// Tokens and cost. `input_tokens` counts only uncached input: cache reads and writes are
/// counted apart, whatever convention the agent prints in.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// The model that consumed the tokens, when the agent or the caller said.
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// In US dollars: what the agent reported, or else an estimate from [`Prices`]; `None` when
    /// neither is known. A correcting event can be negative: when an agent reports its total
    /// cost only at the end, the last event carries that total minus what earlier estimates
    /// already booked.
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Every token counted, cached or not.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

/// Turns an agent's output lines into events. One parser reads one run.
pub trait Parser: Send {
    /// One line of output, without its line ending (a trailing `\r` is tolerated).
    fn line(&mut self, line: &str) -> Vec<AgentEvent>;
    /// The output has ended: whatever was held back.
    fn finish(&mut self) -> Vec<AgentEvent>;
}

/// What a parser may know beyond the output itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParserOptions {
    /// Prices tokens the agent reports without a cost.
    pub prices: Prices,
    /// The model the agent was asked for, for usage whose output does not name one (Codex's
    /// stream never does).
    pub model: Option<String>,
}

/// A parser for `kind`'s output, with no prices and no known model.
pub fn parser(kind: AgentKind) -> Box<dyn Parser> {
    parser_with(kind, ParserOptions::default())
}

/// A parser for `kind`'s output. The formats it reads are those the invocation asks for:
/// Claude Code's `stream-json`, Codex's `exec --json` JSONL, Gemini CLI's `stream-json` (and its
/// `json` document), Aider's plain text with its `Tokens:` reports; a command's output is all
/// [`AgentEvent::Output`].
pub fn parser_with(kind: AgentKind, options: ParserOptions) -> Box<dyn Parser> {
    let meter = meter::Meter::new(options);
    match kind {
        AgentKind::Claude => Box::new(claude::Claude::new(meter)),
        AgentKind::Codex => Box::new(codex::Codex::new(meter)),
        AgentKind::Aider => Box::new(aider::Aider::new(meter)),
        AgentKind::Gemini => Box::new(gemini::Gemini::new(meter)),
        AgentKind::Command => Box::new(Plain),
    }
}

/// A program kamachiq knows nothing about: every line is output.
#[derive(Debug)]
struct Plain;

impl Parser for Plain {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        vec![text::output(line)]
    }

    fn finish(&mut self) -> Vec<AgentEvent> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_tokens_counts_every_kind_of_token() {
        let usage = Usage {
            model: None,
            input_tokens: 1,
            output_tokens: 20,
            cache_read_tokens: 300,
            cache_write_tokens: 4_000,
            cost_usd: None,
        };
        assert_eq!(usage.total_tokens(), 4_321);
    }

    #[test]
    fn total_tokens_saturates() {
        let usage = Usage {
            input_tokens: u64::MAX,
            output_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(usage.total_tokens(), u64::MAX);
    }

    #[test]
    fn events_serialise_with_a_type_tag() {
        let usage = AgentEvent::Usage(Usage {
            model: Some("m".to_owned()),
            input_tokens: 1,
            ..Usage::default()
        });
        assert_eq!(
            serde_json::to_string(&usage).unwrap(),
            r#"{"type":"usage","model":"m","input_tokens":1,"output_tokens":0,"cache_read_tokens":0,"cache_write_tokens":0,"cost_usd":null}"#
        );
        let finished = AgentEvent::Finished {
            success: true,
            summary: None,
        };
        let json = serde_json::to_string(&finished).unwrap();
        assert_eq!(json, r#"{"type":"finished","success":true,"summary":null}"#);
        assert_eq!(serde_json::from_str::<AgentEvent>(&json).unwrap(), finished);
    }

    #[test]
    fn a_command_s_lines_are_all_output() {
        let mut parser = parser(AgentKind::Command);
        assert_eq!(
            parser.line(r#"{"type":"result"}"#),
            [AgentEvent::Output {
                text: r#"{"type":"result"}"#.to_owned()
            }]
        );
        assert_eq!(parser.finish(), []);
    }
}
