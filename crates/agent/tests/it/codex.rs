//! Codex CLI's `exec --json` JSONL, from `samples/codex_exec.jsonl`.

use kamachiq_agent::{AgentEvent, AgentKind, ParserOptions};

use crate::{booked, parse, parse_with, progress, tokens, usages};

const SAMPLE: &str = include_str!("samples/codex_exec.jsonl");

#[test]
fn usage_splits_cached_input_from_the_rest() {
    let events = parse(AgentKind::Codex, SAMPLE);
    let usages = usages(&events);
    assert_eq!(usages.len(), 1);
    // input_tokens 48,210 of which cached_input_tokens 40,960.
    assert_eq!(tokens(usages[0]), [7_250, 1_893, 40_960, 0]);
    assert_eq!(usages[0].total_tokens(), 48_210 + 1_893);
    assert_eq!(usages[0].cost_usd, None);
}

#[test]
fn the_stream_names_no_model_so_the_requested_one_is_used() {
    let events = parse_with(
        AgentKind::Codex,
        ParserOptions {
            model: Some("gpt-5-codex".to_owned()),
            ..ParserOptions::default()
        },
        SAMPLE,
    );
    assert_eq!(usages(&events)[0].model.as_deref(), Some("gpt-5-codex"));
}

#[test]
fn progress_shows_commands_failures_and_file_changes() {
    let events = parse(AgentKind::Codex, SAMPLE);
    assert_eq!(
        progress(&events),
        [
            "Shell: cat src/api.rs",
            "Edit src/api.rs",
            "Shell: cargo test",
            "Shell exited 101: cargo test",
            "Add src/auth.rs, Edit src/api.rs",
            "Shell: cargo test",
            "Every route now goes through `require_token`, defined in `src/auth.rs`; `cargo test` passes.",
        ]
    );
}

#[test]
fn the_completed_turn_finishes_with_the_last_message() {
    let events = parse(AgentKind::Codex, SAMPLE);
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Finished {
            success: true,
            summary: Some(
                "Every route now goes through `require_token`, defined in `src/auth.rs`; `cargo test` passes."
                    .to_owned()
            ),
        })
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, AgentEvent::Failed { .. } | AgentEvent::Output { .. }))
    );
}

#[test]
fn turn_usage_is_a_running_total_so_later_turns_add_their_growth() {
    let output = concat!(
        r#"{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":200,"output_tokens":50}}"#,
        "\n",
        r#"{"type":"turn.completed","usage":{"input_tokens":2500,"cached_input_tokens":1200,"output_tokens":80}}"#,
        "\n",
    );
    let events = parse(AgentKind::Codex, output);
    let per_turn: Vec<[u64; 4]> = usages(&events).into_iter().map(tokens).collect();
    assert_eq!(per_turn, [[800, 50, 200, 0], [500, 30, 1_000, 0]]);
    assert_eq!(tokens(&booked(&events)), [1_300, 80, 1_200, 0]);
}

#[test]
fn a_failed_turn() {
    let output = concat!(
        r#"{"type":"thread.started","thread_id":"t"}"#,
        "\n",
        r#"{"type":"turn.started"}"#,
        "\n",
        r#"{"type":"error","message":"stream disconnected before completion"}"#,
        "\n",
        r#"{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}"#,
        "\n",
    );
    assert_eq!(
        parse(AgentKind::Codex, output),
        [
            AgentEvent::Failed {
                message: "stream disconnected before completion".to_owned()
            },
            AgentEvent::Failed {
                message: "stream disconnected before completion".to_owned()
            },
            AgentEvent::Finished {
                success: false,
                summary: None
            },
        ]
    );
}

#[test]
fn a_non_fatal_error_item_is_a_warning() {
    let line = r#"{"type":"item.completed","item":{"id":"item_9","type":"error","message":"model rerouted: gpt-5 -> gpt-5-mini"}}"#;
    assert_eq!(
        parse(AgentKind::Codex, line),
        [AgentEvent::Progress {
            text: "Warning: model rerouted: gpt-5 -> gpt-5-mini".to_owned()
        }]
    );
}
