//! The emergency stop and pausing, on the real binary with real processes: ten running steps
//! stopped at once, their state kept, nothing started while stopped, and the run finished after
//! `resume-all`. With PostgreSQL, one stop reaches the runs of every machine on the store.

use std::time::{Duration, Instant};

use crate::support::{
    KillOnDrop, PostgresSchema, Workspace, read_events_until, stderr, step_processes,
    wait_for_no_steps,
};

/// `n` deliverables whose step sleeps a minute the first time it runs, and passes at once the
/// next time (a marker outside the worktree remembers).
fn sleepers(ws: &Workspace, n: usize) -> String {
    let mut plan = String::from("repo: ../service\ndeliverables:\n");
    let marks = ws.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    for i in 0..n {
        plan.push_str(&format!(
            "  - id: d{i}\n    steps:\n      - name: dev\n        run: \"if [ -f {m}/d{i} ]; then echo again; else touch {m}/d{i}; sleep 60; fi\"\n",
            m = marks.display()
        ));
    }
    ws.write("plans/sleepers.yaml", &plan)
        .to_str()
        .unwrap()
        .to_owned()
}

fn wait_for_steps(run: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while step_processes(run) < n {
        assert!(Instant::now() < deadline, "the steps never all started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_emergency_stop_ends_ten_running_steps_and_keeps_their_state() {
    let ws = Workspace::new();
    let plan = sleepers(&ws, 10);
    let mut child = ws.spawn(&["run", &plan, "--concurrency", "10", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_steps(&run, 10);

    let began = Instant::now();
    let out = ws
        .command(&["stop", "--reason", "drill"])
        .env("USER", "alice")
        .output()
        .unwrap();
    let stop_took = began.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(wait_for_no_steps(&run), 0, "every step process is gone");
    let gone = began.elapsed();
    eprintln!(
        "emergency stop: `kamachiq stop` returned after {stop_took:?}; all ten step processes gone after {gone:?}"
    );
    assert!(gone < Duration::from_secs(5), "took {gone:?}");

    // The run's own process ends, saying why, with exit code 6.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(6));
    let view = ws.json(&["status", &run, "--json"]);
    assert_eq!(view["state"], "running", "the run is kept, open");
    for d in view["deliverables"].as_array().unwrap() {
        // Handed back: no step running, the attempt interrupted, to be run again.
        assert_eq!(d["current_step"], serde_json::Value::Null, "{d}");
        assert_eq!(d["steps"][0]["state"], "interrupted", "{d}");
    }

    // Nothing starts while stopped: a new run is kept but not driven.
    let other = ws.write(
        "plans/other.yaml",
        "repo: ../service\ndeliverables:\n  - {id: x, steps: [{name: dev, run: 'touch ran'}]}\n",
    );
    let out = ws.run(&["run", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("emergency stop is on"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));

    // Lifted, the run goes on from where it was and finishes.
    let out = ws
        .command(&["resume-all"])
        .env("USER", "bob")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = ws.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ws.json(&["status", &run, "--json"])["state"], "succeeded");

    let trail = ws.json(&["audit", "list", "--json"]);
    let trail: Vec<(String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("emergency_stop".to_owned(), "local:alice".to_owned()),
            ("resume_all".to_owned(), "local:bob".to_owned()),
        ]
    );
}

#[test]
fn the_stop_file_stops_a_running_run() {
    let ws = Workspace::new();
    let plan = sleepers(&ws, 10);
    let mut child = ws.spawn(&["run", &plan, "--concurrency", "10", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_steps(&run, 10);
    std::fs::write(ws.path().join(".kamachiq/STOP"), "").unwrap();
    assert_eq!(wait_for_no_steps(&run), 0);
    assert_eq!(child.wait().unwrap().code(), Some(6));
    let trail = ws.json(&["audit", "list", "--json"]);
    assert!(
        trail[0]["actor"].as_str().unwrap().starts_with("file:"),
        "{trail:#}"
    );
    // resume-all removes the file, or it would stop everything again.
    assert_eq!(ws.run(&["resume-all"]).status.code(), Some(0));
    assert!(!ws.path().join(".kamachiq/STOP").exists());
    assert_eq!(ws.run(&["resume", &run]).status.code(), Some(0));
}

#[test]
fn a_paused_run_hands_its_work_back_and_resume_continues_it() {
    let ws = Workspace::new();
    let plan = sleepers(&ws, 10);
    let mut child = ws.spawn(&["run", &plan, "--concurrency", "10", "--json"]);
    let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_steps(&run, 10);
    let out = ws.run(&["pause", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(wait_for_no_steps(&run), 0);
    assert_eq!(child.wait().unwrap().code(), Some(6));
    // Paused: no driver takes it, and other runs are not affected.
    let other = ws.write(
        "plans/other.yaml",
        "repo: ../service\ndeliverables:\n  - {id: x, steps: [{name: dev, run: 'true'}]}\n",
    );
    assert_eq!(
        ws.run(&["run", other.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let out = ws.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ws.json(&["status", &run, "--json"])["state"], "succeeded");
    let out = ws.run(&["pause", &run]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a finished run cannot be paused"
    );
}

/// Two machines (each its own home, repository and `kamachiq run` process) share one
/// PostgreSQL store; `kamachiq stop` from a third stops the steps of both, and `resume-all`
/// lets both finish.
#[test]
fn with_postgresql_the_stop_reaches_every_worker() {
    let Some(pg) = PostgresSchema::create() else {
        return;
    };
    let url = pg.url.as_str();
    let machines = [Workspace::new(), Workspace::new()];
    let mut runs = Vec::new();
    for ws in &machines {
        let plan = sleepers(ws, 5);
        let mut child = ws.spawn(&[
            "--database-url",
            url,
            "run",
            &plan,
            "--concurrency",
            "5",
            "--json",
        ]);
        let events = read_events_until(&mut child, |e| e["kind"] == "run_started");
        let run = events[0]["run_id"].as_str().unwrap().to_owned();
        runs.push((run, KillOnDrop(child)));
    }
    for (run, _) in &runs {
        wait_for_steps(run, 5);
    }

    let operator = Workspace::new();
    let began = Instant::now();
    let out = operator
        .command(&["--database-url", url, "stop", "--reason", "drill"])
        .env("USER", "alice")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (run, _) in &runs {
        assert_eq!(wait_for_no_steps(run), 0, "every step of {run} is gone");
    }
    let gone = began.elapsed();
    eprintln!("emergency stop on PostgreSQL: the steps of both machines gone after {gone:?}");
    assert!(gone < Duration::from_secs(5), "took {gone:?}");
    for (run, child) in &mut runs {
        assert_eq!(
            child.0.wait().unwrap().code(),
            Some(6),
            "run {run} ends with 6"
        );
    }

    let out = operator
        .command(&["--database-url", url, "resume-all"])
        .env("USER", "bob")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for ((run, _), ws) in runs.iter().zip(&machines) {
        let out = ws.run(&["--database-url", url, "resume", run]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let view = ws.json(&["--database-url", url, "status", run, "--json"]);
        assert_eq!(view["state"], "succeeded", "{view:#}");
    }
    let trail = operator.json(&["--database-url", url, "audit", "list", "--json"]);
    let actors: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["local:alice", "local:bob"], "{trail:#}");
}
