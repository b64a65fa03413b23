//! Claude Code's stream-json, from `samples/claude_stream.jsonl`.

use std::collections::BTreeMap;

use kamachiq_agent::{AgentEvent, AgentKind, ParserOptions, Price, Prices};

use crate::{booked, dollars, parse, parse_with, progress, tokens, usages};

const SAMPLE: &str = include_str!("samples/claude_stream.jsonl");
const MODEL: &str = "claude-sonnet-4-5-20250929";

#[test]
fn usage_adds_up_to_the_result_s_totals() {
    let events = parse(AgentKind::Claude, SAMPLE);
    let total = booked(&events);
    // The result's usage: input 20, output 870, cache read 80,180, cache write 6,850.
    assert_eq!(tokens(&total), [20, 870, 80_180, 6_850]);
    assert_eq!(dollars(total.cost_usd), dollars(Some(0.1418)));
}

#[test]
fn each_message_id_is_counted_once() {
    let events = parse(AgentKind::Claude, SAMPLE);
    let per_event: Vec<[u64; 4]> = usages(&events).into_iter().map(tokens).collect();
    assert_eq!(
        per_event,
        [
            // msg_01Hk…, on two lines with the same usage
            [3, 96, 11_230, 4_820],
            [5, 412, 16_050, 1_210],
            // msg_01Lp…, on two lines with the same usage
            [4, 35, 17_260, 300],
            [6, 220, 17_560, 520],
            [2, 64, 18_080, 0],
            // the result: only the 43 output tokens the messages did not show
            [0, 43, 0, 0],
        ]
    );
}

#[test]
fn message_usage_names_its_model_and_the_cost_comes_with_the_result() {
    let events = parse(AgentKind::Claude, SAMPLE);
    let usages = usages(&events);
    assert!(
        usages
            .iter()
            .all(|usage| usage.model.as_deref() == Some(MODEL))
    );
    let costs: Vec<Option<f64>> = usages.iter().map(|usage| usage.cost_usd).collect();
    assert_eq!(costs, [None, None, None, None, None, Some(0.1418)]);
}

#[test]
fn progress_shows_messages_tool_calls_and_failures() {
    let events = parse(AgentKind::Claude, SAMPLE);
    assert_eq!(
        progress(&events),
        [
            "I'll start by reading the API module to see how routes are registered.",
            "Read /srv/kamachiq/worktrees/api-auth/src/api.rs",
            "Edit /srv/kamachiq/worktrees/api-auth/src/api.rs",
            "Now I'll run the tests.",
            "Bash: cargo test",
            "Bash failed: error[E0425]: cannot find function `require_token` in this scope --> src/api.rs:4:24",
            "Write /srv/kamachiq/worktrees/api-auth/src/auth.rs",
            "Every route now requires a bearer token, and `cargo test` passes.",
        ]
    );
}

#[test]
fn the_result_finishes_the_run() {
    let events = parse(AgentKind::Claude, SAMPLE);
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Finished {
            success: true,
            summary: Some(
                "Every route now requires a bearer token, and `cargo test` passes.".to_owned()
            ),
        })
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, AgentEvent::Failed { .. }))
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, AgentEvent::Output { .. }))
    );
}

#[test]
fn the_reported_total_cost_replaces_estimates() {
    let prices = Prices(BTreeMap::from([(
        "claude-sonnet-4-5".to_owned(),
        Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cache_read_per_mtok: Some(0.3),
            cache_write_per_mtok: Some(3.75),
        },
    )]));
    let events = parse_with(
        AgentKind::Claude,
        ParserOptions {
            prices,
            model: None,
        },
        SAMPLE,
    );
    let usages = usages(&events);
    // Each message is priced as it streams, so a budget can act before the result…
    assert!(usages[..5].iter().all(|usage| usage.cost_usd.is_some()));
    // …and the result corrects the sum to what Claude Code reported.
    assert_eq!(dollars(booked(&events).cost_usd), dollars(Some(0.1418)));
}

#[test]
fn a_result_repeated_adds_nothing() {
    let result = SAMPLE.lines().last().unwrap();
    let twice = format!("{SAMPLE}{result}\n");
    let events = parse(AgentKind::Claude, &twice);
    assert_eq!(tokens(&booked(&events)), [20, 870, 80_180, 6_850]);
    assert_eq!(dollars(booked(&events).cost_usd), dollars(Some(0.1418)));
}

#[test]
fn a_failed_run() {
    let output = concat!(
        r#"{"type":"system","subtype":"init","model":"claude-opus-4-1-20250805","session_id":"s"}"#,
        "\n",
        r#"{"type":"assistant","message":{"id":"msg_1","model":"claude-opus-4-1-20250805","content":[{"type":"text","text":"Working on it."}],"usage":{"input_tokens":10,"output_tokens":5}}}"#,
        "\n",
        r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":30,"total_cost_usd":0.5,"usage":{"input_tokens":10,"output_tokens":5}}"#,
        "\n",
    );
    let events = parse(AgentKind::Claude, output);
    let tail = &events[events.len() - 3..];
    assert_eq!(
        tail,
        [
            AgentEvent::Usage(kamachiq_agent::Usage {
                model: Some("claude-opus-4-1-20250805".to_owned()),
                cost_usd: Some(0.5),
                ..kamachiq_agent::Usage::default()
            }),
            AgentEvent::Failed {
                message: "Claude Code stopped: error_max_turns".to_owned()
            },
            AgentEvent::Finished {
                success: false,
                summary: None
            },
        ]
    );
}
