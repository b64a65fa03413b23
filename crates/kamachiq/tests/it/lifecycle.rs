//! A run's life across processes: killed with `kill -9`, cancelled from another process,
//! interrupted with Ctrl-C, and the demo from the README.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    Workspace, git, read_events_until, stderr, stdout, wait_for_no_steps, wait_for_text,
};

fn signal(child: &std::process::Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
}

#[test]
fn kill_9_mid_step_loses_nothing_and_resume_finishes_the_run() {
    let ws = Workspace::new();
    let log = ws.path().join("executions.log");
    let plan = format!(
        r#"repo: service
deliverables:
  - id: api
    steps:
      - name: prep
        run: 'echo api.prep >> {log}; echo prep > prep.txt'
      - name: slow
        run: 'echo api.slow-start >> {log}; sleep 3; echo api.slow-end >> {log}; echo slow > slow.txt'
  - id: docs
    dependencies: [api]
    steps:
      - name: docs
        run: 'echo docs >> {log}; echo docs > docs.txt'
"#,
        log = log.display()
    );
    ws.write("plan.yaml", &plan);
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_text(&log, "api.slow-start");
    let killed_at = Instant::now();
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();

    // The dead driver's pid is gone, so the run is taken over at once, not after the lease.
    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["state"], "running");
    let out = ws.run(&["resume", &run, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(killed_at.elapsed() < Duration::from_secs(20));

    // Wait past the moment the killed step would have finished: its orphaned process was
    // killed when the run was taken over, so it never writes `api.slow-end` a second time.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(killed_at.elapsed()));
    let executions = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        executions.lines().collect::<Vec<_>>(),
        [
            "api.prep",
            "api.slow-start",
            "api.slow-start",
            "api.slow-end",
            "docs"
        ],
        "prep ran once; the interrupted step ran again; docs once"
    );

    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["deliverables"][0]["attempts"], 2);
    let steps: Vec<(String, String)> = status["deliverables"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("prep".to_owned(), "succeeded".to_owned()),
            ("slow".to_owned(), "interrupted".to_owned()),
            ("slow".to_owned(), "succeeded".to_owned()),
        ]
    );
    let merges = git(&ws.repo(), &["log", "--merges", "--format=%s", "main"]);
    assert_eq!(
        merges.lines().count(),
        2,
        "one merge per deliverable:\n{merges}"
    );
    for file in ["prep.txt", "slow.txt", "docs.txt"] {
        assert!(ws.repo().join(file).exists(), "{file}");
    }
}

#[test]
fn cancel_from_another_process_stops_the_run_promptly() {
    let ws = Workspace::new();
    ws.write(
        "plan.yaml",
        "repo: service\ndeliverables:\n  - {id: long, steps: [{name: dev, run: 'sleep 60'}]}\n  - {id: after, dependencies: [long], steps: [{name: dev, run: 'true'}]}\n",
    );
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "step_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let out = ws.run(&["cancel", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("run {run} cancelled\n"));
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(3), "a cancelled run exits with 3");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["state"], "cancelled");
    let states: Vec<&str> = status["deliverables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["cancelled", "cancelled"]);
}

#[test]
fn ctrl_c_hands_work_back_and_resume_continues() {
    let ws = Workspace::new();
    let log = ws.path().join("runs.log");
    ws.write(
        "plan.yaml",
        &format!(
            "repo: service\ndeliverables:\n  - {{id: a, steps: [{{name: dev, run: 'echo a >> {log}; sleep 30'}}]}}\n",
            log = log.display()
        ),
    );
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_text(&log, "a");
    signal(&child, Signal::SIGINT);
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));
    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["state"], "running");
    assert_eq!(
        status["driver"],
        serde_json::Value::Null,
        "the lease was given back"
    );

    // Resume: the interrupted step starts again (a second attempt); cancel it to end quickly.
    let mut resumed = ws.spawn(&["resume", &run, "--json"]);
    read_events_until(&mut resumed, |e| e["kind"] == "step_started");
    let out = ws.run(&["cancel", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(resumed.wait().unwrap().code(), Some(3));
    let attempts = ws.json(&["status", &run, "--json"])["deliverables"][0]["attempts"].clone();
    assert_eq!(attempts, 2);
}

#[test]
fn the_demo_runs_a_diamond_to_success() {
    let ws = Workspace::new();
    let out = ws.run(&["demo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(": 6 succeeded, 0 failed, 0 skipped, 0 cancelled of 6"),
        "{text}"
    );
    assert!(
        text.contains("The project's test command on main: check: 4 test files passed"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("! tests ▸ qa: step `qa` exited with status 1"),
        "the demo shows a retry"
    );
    assert!(
        !ws.path().join(".kamachiq").exists(),
        "the demo keeps its state in its own folder"
    );
}

#[test]
fn an_interrupted_step_keeps_what_it_printed() {
    let ws = Workspace::new();
    ws.write(
        "plan.yaml",
        "repo: service\ndeliverables:\n  - {id: a, steps: [{name: dev, run: 'echo half done; sleep 30'}]}\n",
    );
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "step_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, Signal::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let logs = ws.run(&["logs", &run, "a", "dev"]);
    assert_eq!(
        stdout(&logs),
        "── dev · attempt 1 · interrupted ──\nhalf done\n"
    );
    assert_eq!(wait_for_no_steps(&run), 0);
}

#[test]
fn a_closed_output_stops_the_run_cleanly() {
    let ws = Workspace::new();
    ws.write(
        "plan.yaml",
        "repo: service\ndeliverables:\n  - {id: a, steps: [{name: dev, run: 'sleep 30'}]}\n  - {id: b, steps: [{name: dev, run: 'sleep 30'}]}\n",
    );
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    // Read as `kamachiq run --json | head -1` would, then go away.
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut first).unwrap();
    }
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    let run = event["run_id"].as_str().unwrap().to_owned();
    let stopped = Instant::now();
    let code = child.wait().unwrap().code();
    assert_eq!(
        code,
        Some(130),
        "stopped like Ctrl-C, not ended as a success"
    );
    assert!(stopped.elapsed() < Duration::from_secs(20));
    assert_eq!(
        wait_for_no_steps(&run),
        0,
        "no step outlives the run's driver"
    );
    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["state"], "running", "resumable");
    assert_eq!(status["driver"], serde_json::Value::Null);
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_no_step_behind() {
    let ws = Workspace::new();
    let log = ws.path().join("started.log");
    ws.write(
        "plan.yaml",
        &format!(
            "repo: service\ndeliverables:\n  - {{id: a, steps: [{{name: dev, run: \"trap '' TERM; echo up >> {log}; sleep 30\"}}]}}\n",
            log = log.display()
        ),
    );
    let mut child = ws
        .command(&["run", "plan.yaml", "--json"])
        .env("KAMACHIQ_ENGINE_KILL_GRACE", "30s")
        .env("KAMACHIQ_ENGINE_LEASE_TTL", "60s")
        .env("KAMACHIQ_ENGINE_HEARTBEAT", "20s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_text(&log, "up");
    // The step ignores SIGTERM, so the first Ctrl-C waits for its grace period...
    signal(&child, Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    // ...and the second one ends it all now.
    let second = Instant::now();
    signal(&child, Signal::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(second.elapsed() < Duration::from_secs(10));
    assert_eq!(wait_for_no_steps(&run), 0);
}

#[test]
fn resume_retry_failed_never_touches_a_run_driven_elsewhere() {
    let ws = Workspace::new();
    ws.write(
        "plan.yaml",
        "repo: service\ndeliverables:\n  - {id: bad, steps: [{name: dev, run: 'exit 1'}]}\n  - {id: slow, steps: [{name: dev, run: 'sleep 30'}]}\n",
    );
    let mut child = ws.spawn(&["run", "plan.yaml", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "deliverable_failed");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    let out = ws.run(&["resume", &run, "--retry-failed"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is being driven by"),
        "{}",
        stderr(&out)
    );
    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(
        status["deliverables"][0]["state"], "failed",
        "nothing was reopened"
    );
    assert_eq!(status["cancel_requested"], false);
    let out = ws.run(&["cancel", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(child.wait().unwrap().code(), Some(3));
}
