//! Gemini CLI's headless output: `samples/gemini_stream.jsonl` (stream-json) and
//! `samples/gemini.json` (json).

use kamachiq_agent::{AgentEvent, AgentKind};

use crate::{booked, outputs, parse, progress, tokens, usages};

const STREAM: &str = include_str!("samples/gemini_stream.jsonl");
const DOCUMENT: &str = include_str!("samples/gemini.json");

#[test]
fn stream_usage_comes_from_the_result_stats() {
    let events = parse(AgentKind::Gemini, STREAM);
    let usages = usages(&events);
    assert_eq!(usages.len(), 1);
    // input 6,100 uncached + 18,000 cached = 24,100 prompt tokens; 1,650 candidates and 580
    // thinking tokens = 26,330 - 24,100 output.
    assert_eq!(tokens(usages[0]), [6_100, 2_230, 18_000, 0]);
    assert_eq!(usages[0].total_tokens(), 26_330);
    assert_eq!(usages[0].model.as_deref(), Some("gemini-2.5-pro"));
}

#[test]
fn stream_progress_joins_message_chunks_and_names_tool_calls() {
    let events = parse(AgentKind::Gemini, STREAM);
    assert_eq!(
        progress(&events),
        [
            "I'll look at how the routes are built first.",
            "read_file /srv/kamachiq/worktrees/api-auth/src/api.rs",
            "replace /srv/kamachiq/worktrees/api-auth/src/api.rs",
            "run_shell_command: cargo test",
            "run_shell_command failed: Command exited with code: 101",
            "Warning: Retrying the request after a transient API error (429).",
            "The helper is missing; adding it.",
            "write_file /srv/kamachiq/worktrees/api-auth/src/auth.rs",
            "Every route now requires a bearer token, and the tests pass.",
        ]
    );
}

#[test]
fn the_stream_result_finishes_with_the_last_message() {
    let events = parse(AgentKind::Gemini, STREAM);
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Finished {
            success: true,
            summary: Some(
                "Every route now requires a bearer token, and the tests pass.".to_owned()
            ),
        })
    );
    assert_eq!(outputs(&events), Vec::<&str>::new());
}

#[test]
fn an_error_result() {
    let output = concat!(
        r#"{"type":"init","timestamp":"t","session_id":"s","model":"gemini-2.5-flash"}"#,
        "\n",
        r#"{"type":"error","timestamp":"t","severity":"error","message":"Quota exceeded"}"#,
        "\n",
        r#"{"type":"result","timestamp":"t","status":"error","error":{"type":"FatalTurnLimitedError","message":"Reached max session turns"},"stats":{"total_tokens":100,"input_tokens":90,"output_tokens":10,"duration_ms":5,"tool_calls":0}}"#,
        "\n",
    );
    let events = parse(AgentKind::Gemini, output);
    assert_eq!(
        events,
        [
            AgentEvent::Failed {
                message: "Quota exceeded".to_owned()
            },
            AgentEvent::Usage(kamachiq_agent::Usage {
                model: Some("gemini-2.5-flash".to_owned()),
                input_tokens: 90,
                output_tokens: 10,
                ..kamachiq_agent::Usage::default()
            }),
            AgentEvent::Failed {
                message: "Reached max session turns".to_owned()
            },
            AgentEvent::Finished {
                success: false,
                summary: None
            },
        ]
    );
}

#[test]
fn the_json_document_gives_usage_per_model_and_the_response() {
    let events = parse(AgentKind::Gemini, DOCUMENT);
    let mut per_model: Vec<(Option<&str>, [u64; 4])> = usages(&events)
        .into_iter()
        .map(|usage| (usage.model.as_deref(), tokens(usage)))
        .collect();
    // Object order depends on serde_json's features, which other crates may change.
    per_model.sort();
    assert_eq!(
        per_model,
        [
            // 21,600 prompt tokens of which 16,000 cached; 1,420 candidates and 580 thoughts.
            (Some("gemini-2.5-flash-lite"), [900, 40, 0, 0]),
            (Some("gemini-2.5-pro"), [5_600, 2_000, 16_000, 0]),
        ]
    );
    assert_eq!(booked(&events).total_tokens(), 23_600 + 940);
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Finished {
            success: true,
            summary: Some(
                "Every route now requires a bearer token, and the tests pass.".to_owned()
            ),
        })
    );
    assert_eq!(outputs(&events), Vec::<&str>::new());
}

#[test]
fn a_json_error_document() {
    let output = "{\n  \"error\": {\n    \"type\": \"FatalAuthenticationError\",\n    \"message\": \"No API key\",\n    \"code\": 41\n  }\n}\n";
    assert_eq!(
        parse(AgentKind::Gemini, output),
        [
            AgentEvent::Failed {
                message: "No API key".to_owned()
            },
            AgentEvent::Finished {
                success: false,
                summary: None
            },
        ]
    );
}

#[test]
fn a_brace_block_that_is_not_a_document_is_passed_on() {
    let output = "{\n  not json at all\n}\nafter\n";
    assert_eq!(
        outputs(&parse(AgentKind::Gemini, output)),
        ["{", "  not json at all", "}", "after"]
    );
}

#[test]
fn an_unterminated_document_is_passed_on_at_the_end() {
    let output = "{\n  \"response\": \"cut off";
    assert_eq!(
        outputs(&parse(AgentKind::Gemini, output)),
        ["{", "  \"response\": \"cut off"]
    );
}

#[test]
fn chunks_left_at_the_end_are_shown() {
    let output = r#"{"type":"message","role":"assistant","content":"half a thought","delta":true}"#;
    assert_eq!(
        progress(&parse(AgentKind::Gemini, output)),
        ["half a thought"]
    );
}
