//! Integration tests of the agent crate: invocations as the engine builds them, and each
//! parser reading a whole sample of its agent's output (see `samples/README.md`: hand-written
//! samples in the documented formats, not recordings).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod aider;
mod claude;
mod codex;
mod gemini;
mod invocation;
mod robustness;

use kamachiq_agent::{AgentEvent, AgentKind, Parser, ParserOptions, Usage, parser_with};

/// Every event of `output`, read line by line by a fresh parser, then `finish`.
fn parse_with(kind: AgentKind, options: ParserOptions, output: &str) -> Vec<AgentEvent> {
    let mut parser: Box<dyn Parser> = parser_with(kind, options);
    let mut events: Vec<AgentEvent> = output.lines().flat_map(|line| parser.line(line)).collect();
    events.extend(parser.finish());
    events
}

fn parse(kind: AgentKind, output: &str) -> Vec<AgentEvent> {
    parse_with(kind, ParserOptions::default(), output)
}

fn usages(events: &[AgentEvent]) -> Vec<&Usage> {
    events
        .iter()
        .filter_map(|event| match event {
            AgentEvent::Usage(usage) => Some(usage),
            _ => None,
        })
        .collect()
}

/// The sum of every usage event, as the ledger books it. The cost is `None` when no event had
/// one.
fn booked(events: &[AgentEvent]) -> Usage {
    let mut total = Usage::default();
    for usage in usages(events) {
        total.input_tokens += usage.input_tokens;
        total.output_tokens += usage.output_tokens;
        total.cache_read_tokens += usage.cache_read_tokens;
        total.cache_write_tokens += usage.cache_write_tokens;
        if let Some(cost) = usage.cost_usd {
            total.cost_usd = Some(total.cost_usd.unwrap_or(0.0) + cost);
        }
    }
    total
}

/// Costs compared to the nanodollar the parsers round to.
fn dollars(cost: Option<f64>) -> Option<i64> {
    cost.map(|cost| (cost * 1e9).round() as i64)
}

fn progress(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            AgentEvent::Progress { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn outputs(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            AgentEvent::Output { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn tokens(usage: &Usage) -> [u64; 4] {
    [
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    ]
}
