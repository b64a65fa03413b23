//! Output no agent documents: broken JSON, unknown events, huge lines. None of it may fail the
//! parse or panic.

use kamachiq_agent::{AgentEvent, AgentKind};

use crate::{outputs, parse, progress, usages};

const JSON_AGENTS: [AgentKind; 3] = [AgentKind::Claude, AgentKind::Codex, AgentKind::Gemini];

#[test]
fn text_lines_are_output() {
    for kind in AgentKind::ALL {
        let events = parse(
            kind,
            "Loaded 3 MCP servers\nwarning: config file not found\r\n",
        );
        assert_eq!(
            outputs(&events),
            ["Loaded 3 MCP servers", "warning: config file not found"],
            "{kind}"
        );
    }
}

#[test]
fn malformed_json_is_output() {
    let broken = [
        r#"{"type":"assistant","message":{"id":"msg_1","usage":{"input_tokens":12"#,
        r#"{"type": "result", "subtype": }"#,
        "{",
        "[1, 2, 3]",
        r#""just a string""#,
        "null",
    ];
    for kind in [AgentKind::Claude, AgentKind::Codex] {
        let events = parse(kind, &broken.join("\n"));
        assert_eq!(outputs(&events), broken, "{kind}");
    }
    // Gemini holds a lone `{` back as the start of a `json` document, and passes it on when
    // the output ends without one.
    let events = parse(AgentKind::Gemini, &broken.join("\n"));
    assert_eq!(outputs(&events).len(), broken.len());
}

#[test]
fn json_without_a_type_is_output() {
    for kind in [AgentKind::Claude, AgentKind::Codex] {
        let line = r#"{"level":"info","msg":"starting"}"#;
        assert_eq!(outputs(&parse(kind, line)), [line], "{kind}");
    }
}

#[test]
fn unknown_event_types_are_ignored() {
    let unknown = concat!(
        r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
        "\n",
        r#"{"type":"telemetry.flushed","count":3}"#,
        "\n",
        r#"{"type":"system","subtype":"compact_boundary"}"#,
        "\n",
        r#"{"type":"item.completed","item":{"id":"i","type":"hologram","text":"?"}}"#,
        "\n",
        r#"{"type":"message","role":"narrator","content":"?"}"#,
        "\n",
    );
    for kind in JSON_AGENTS {
        assert_eq!(parse(kind, unknown), [], "{kind}");
    }
}

#[test]
fn known_events_with_unexpected_shapes_do_not_panic() {
    let odd = [
        r#"{"type":"assistant"}"#,
        r#"{"type":"assistant","message":{"content":"not a list","usage":[]}}"#,
        r#"{"type":"assistant","message":{"id":7,"content":[1,null,{"type":"tool_use"}],"usage":{"input_tokens":-5,"output_tokens":"many"}}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":true}]}}"#,
        r#"{"type":"result","usage":null,"total_cost_usd":"free"}"#,
        r#"{"type":"item.started","item":"not an object"}"#,
        r#"{"type":"item.completed","item":{"type":"file_change","changes":"all"}}"#,
        r#"{"type":"item.completed","item":{"type":"command_execution","exit_code":"x"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":9}}"#,
        r#"{"type":"turn.failed"}"#,
        r#"{"type":"tool_use","parameters":[1]}"#,
        r#"{"type":"tool_result","status":"error"}"#,
        r#"{"type":"result","stats":{"input_tokens":1e40}}"#,
        r#"{"type":"error"}"#,
    ];
    for kind in AgentKind::ALL {
        for line in odd {
            let _ = parse(kind, line);
        }
    }
}

#[test]
fn cached_tokens_above_the_input_do_not_underflow() {
    let line = r#"{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":9,"output_tokens":1}}"#;
    let events = parse(AgentKind::Codex, line);
    let usage = usages(&events)[0];
    assert_eq!((usage.input_tokens, usage.cache_read_tokens), (0, 9));
}

#[test]
fn very_long_lines_are_handled() {
    let text = "é".repeat(1_000_000);
    let message = format!(
        r#"{{"type":"assistant","message":{{"id":"msg_1","content":[{{"type":"text","text":"{text}"}}],"usage":{{"input_tokens":1,"output_tokens":1}}}}}}"#
    );
    let events = parse(AgentKind::Claude, &message);
    let shown = progress(&events);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].chars().count(), 200);
    assert!(shown[0].ends_with('…'));

    let plain = "z".repeat(2_000_000);
    for kind in AgentKind::ALL {
        let events = parse(kind, &plain);
        assert_eq!(outputs(&events), [plain.as_str()], "{kind}");
    }
}

#[test]
fn blank_lines_in_json_streams_are_dropped() {
    for kind in JSON_AGENTS {
        assert_eq!(parse(kind, "\n   \n\r\n"), [], "{kind}");
    }
}

#[test]
fn blank_lines_in_text_output_are_kept() {
    for kind in [AgentKind::Aider, AgentKind::Command] {
        let events = parse(kind, "a\n\nb");
        assert_eq!(outputs(&events), ["a", "", "b"], "{kind}");
    }
}

#[test]
fn the_parsers_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    for kind in AgentKind::ALL {
        assert_send(&kamachiq_agent::parser(kind));
    }
}

#[test]
fn a_finished_event_is_never_invented() {
    let not_results = [
        "the process was killed",
        r#"{"type":5}"#,
        r#"{"type":null,"status":"success"}"#,
        r#"{"session_id":"s"}"#,
    ];
    for kind in AgentKind::ALL {
        let events = parse(kind, &not_results.join("\n"));
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, AgentEvent::Finished { .. })),
            "{kind}: {events:?}"
        );
    }
}
