//! Aider's text output, from `samples/aider.txt`.

use kamachiq_agent::{AgentEvent, AgentKind};

use crate::{booked, dollars, outputs, parse, progress, tokens, usages};

const SAMPLE: &str = include_str!("samples/aider.txt");
const MODEL: &str = "anthropic/claude-sonnet-4-20250514";

#[test]
fn each_report_is_a_usage_delta() {
    let events = parse(AgentKind::Aider, SAMPLE);
    let per_report: Vec<[u64; 4]> = usages(&events).into_iter().map(tokens).collect();
    assert_eq!(
        per_report,
        [
            // 4.2k sent, 1.1k received
            [4_200, 1_100, 0, 0],
            // 12k sent = 1.5k + 2.0k cache write + 8.5k cache hit; 812 received
            [1_500, 812, 8_500, 2_000],
            // 9.8k sent = 700 + 9.1k cache hit; 95 received
            [700, 95, 9_100, 0],
        ]
    );
    assert_eq!(tokens(&booked(&events)), [6_400, 2_007, 17_600, 2_000]);
}

#[test]
fn cost_follows_the_session_total() {
    let events = parse(AgentKind::Aider, SAMPLE);
    let costs: Vec<Option<i64>> = usages(&events)
        .into_iter()
        .map(|usage| dollars(usage.cost_usd))
        .collect();
    // The message costs print as 0.03, 0.02 and 0.01, which would sum to 0.06; the session
    // reached 0.07.
    assert_eq!(
        costs,
        [
            dollars(Some(0.03)),
            dollars(Some(0.02)),
            dollars(Some(0.02))
        ]
    );
    assert_eq!(dollars(booked(&events).cost_usd), dollars(Some(0.07)));
}

#[test]
fn usage_names_the_main_model() {
    let events = parse(AgentKind::Aider, SAMPLE);
    assert!(
        usages(&events)
            .iter()
            .all(|usage| usage.model.as_deref() == Some(MODEL))
    );
}

#[test]
fn applied_edits_are_progress_and_everything_else_is_output() {
    let events = parse(AgentKind::Aider, SAMPLE);
    assert_eq!(progress(&events), ["Edit src/api.rs", "Edit src/auth.rs"]);
    let outputs = outputs(&events);
    assert_eq!(outputs.first(), Some(&"Aider v0.86.1"));
    assert!(outputs.contains(&"I'll add a token check in front of every route."));
    assert!(!outputs.iter().any(|line| line.starts_with("Tokens:")));
    // Every line is accounted for: 3 reports, 2 edits, the rest output.
    assert_eq!(outputs.len(), SAMPLE.lines().count() - 5);
}

#[test]
fn aider_reports_no_final_result() {
    let events = parse(AgentKind::Aider, SAMPLE);
    assert!(!events.iter().any(|event| matches!(
        event,
        AgentEvent::Finished { .. } | AgentEvent::Failed { .. }
    )));
}

#[test]
fn a_report_without_cost_is_priced_by_nobody() {
    let events = parse(AgentKind::Aider, "Tokens: 116 sent, 30 received.\n");
    assert_eq!(usages(&events).len(), 1);
    assert_eq!(tokens(usages(&events)[0]), [116, 30, 0, 0]);
    assert_eq!(usages(&events)[0].cost_usd, None);
}

#[test]
fn a_sentence_starting_with_tokens_is_output() {
    let line = "Tokens: the unit of billing, explained below.";
    assert_eq!(outputs(&parse(AgentKind::Aider, line)), [line]);
}
