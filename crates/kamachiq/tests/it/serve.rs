//! `kamachiq serve` as a real process: the first-token hint, runs submitted with the client
//! (`--server`), tokens refused, a graceful stop that hands work to the next server, and a
//! killed `kamachiq run` adopted by a server once its lease expires.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    Workspace, git, read_events_until, stderr, stdout, wait_for_no_steps, wait_for_text,
};

/// How long a server may take to answer `/health`, and to stop.
const SERVER_DEADLINE: Duration = Duration::from_secs(30);

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
}

/// The workspace's kamachiq home, as an absolute path: the server and the local commands
/// share it.
pub(crate) fn home(ws: &Workspace) -> String {
    ws.path().join(".kamachiq").display().to_string()
}

/// Waits at most `deadline` for `child` to exit.
fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET path` on `port` with a minimal HTTP/1.1 client; the whole answer, or `None` when
/// nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A `kamachiq serve` child on a port of its own, killed when dropped.
pub(crate) struct Server {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Server {
    /// Starts `kamachiq --home H [global...] serve --listen 127.0.0.1:PORT` and waits until
    /// `/health` answers 200.
    pub(crate) fn start(ws: &Workspace, global: &[&str]) -> Self {
        // The free port may be taken by someone else between the probe and the bind: retry.
        for _ in 0..3 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let stderr = ws.path().join(format!("serve-{port}.stderr"));
            let home = home(ws);
            let mut args = vec!["--home", home.as_str()];
            args.extend_from_slice(global);
            args.extend_from_slice(&["serve", "--listen", &listen]);
            let child = ws
                .command(&args)
                .stdin(Stdio::null())
                .stdout(
                    std::fs::File::create(ws.path().join(format!("serve-{port}.stdout"))).unwrap(),
                )
                .stderr(std::fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap();
            let mut server = Self {
                child,
                port,
                stderr,
            };
            let deadline = Instant::now() + SERVER_DEADLINE;
            while Instant::now() < deadline {
                if http_get(port, "/health").is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
                    return server;
                }
                if server.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let text = server.stderr_text();
            assert!(
                text.contains("cannot listen"),
                "the server never answered /health:\n{text}"
            );
        }
        panic!("no free port for the server after three tries");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    /// Sends SIGTERM and waits for the server to exit.
    fn stop(&mut self) -> ExitStatus {
        signal(&self.child, Signal::SIGTERM);
        wait_with_deadline(&mut self.child, SERVER_DEADLINE).unwrap_or_else(|| {
            panic!(
                "the server did not stop within {SERVER_DEADLINE:?}:\n{}",
                self.stderr_text()
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A new token's `(id, secret)`.
fn create_token(ws: &Workspace, name: &str, role: &str) -> (String, String) {
    let home = home(ws);
    let created = ws.json(&[
        "--home", &home, "token", "create", "--tenant", "default", "--name", name, "--role", role,
        "--json",
    ]);
    (
        created["token"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// `kamachiq --home H status RUN --json`, read from the store the server writes.
fn local_status(ws: &Workspace, run: &str) -> serde_json::Value {
    let home = home(ws);
    ws.json(&["--home", &home, "status", run, "--json"])
}

/// Polls the run's status until `done` holds (at most `deadline`); the status that did.
fn wait_for_status(
    ws: &Workspace,
    run: &str,
    deadline: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + deadline;
    loop {
        let status = local_status(ws, run);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < until,
            "run {run} did not get there within {deadline:?}; last status: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two deliverables, `b` after `a`, each writing a file.
const TWO_FILES: &str = "repo: service\ndeliverables:\n  - {id: a, steps: [{name: dev, run: 'echo a > a.txt'}]}\n  - {id: b, dependencies: [a], steps: [{name: dev, run: 'echo b > b.txt'}]}\n";

/// `kamachiq --server URL run plan.yaml --repo service --json` with an operator token; its
/// output and the JSON events it printed.
fn submit_with_client(
    ws: &Workspace,
    server: &Server,
) -> (std::process::Output, Vec<serde_json::Value>) {
    ws.write("plan.yaml", TWO_FILES);
    let (_, secret) = create_token(ws, "ci", "operator");
    let out = ws
        .command(&[
            "--server",
            &server.url(),
            "run",
            "plan.yaml",
            "--repo",
            "service",
            "--json",
        ])
        .env("KAMACHIQ_TOKEN", &secret)
        .output()
        .unwrap();
    let events = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, events)
}

#[test]
fn serve_hints_at_the_first_admin_token_until_one_exists() {
    let ws = Workspace::new();
    let home = home(&ws);
    let hint = format!(
        "  kamachiq --home {home} token create --tenant default --name admin --role admin\n"
    );

    let mut server = Server::start(&ws, &[]);
    assert_eq!(server.stop().code(), Some(0));
    let text = server.stderr_text();
    assert!(
        text.contains(&format!(
            "no API token exists yet; create the first admin token with:\n{hint}"
        )),
        "{text}"
    );

    // The hint is a command that works as printed.
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let mut server = Server::start(&ws, &[]);
    assert_eq!(server.stop().code(), Some(0));
    let text = server.stderr_text();
    assert!(!text.contains("no API token exists"), "{text}");
    assert!(!text.contains("token create"), "{text}");
}

#[test]
fn a_plan_run_through_the_client_is_driven_by_the_server_and_merged() {
    let ws = Workspace::new();
    let server = Server::start(&ws, &[]);
    let (out, events) = submit_with_client(&ws, &server);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let first = &events[0];
    let last = events.last().unwrap();
    assert_eq!(first["kind"], "run_started");
    assert_eq!(first["data"]["submitted_by"], "ci");
    assert_eq!(last["kind"], "run_finished");
    assert_eq!(last["data"]["state"], "succeeded");
    let run = first["run_id"].as_str().unwrap();
    assert!(events.iter().all(|e| e["run_id"] == run));
    assert_eq!(git(&ws.repo(), &["show", "main:a.txt"]), "a");
    assert_eq!(git(&ws.repo(), &["show", "main:b.txt"]), "b");
}

#[test]
fn runs_and_status_through_the_client_show_the_servers_run() {
    let ws = Workspace::new();
    let server = Server::start(&ws, &[]);
    let (out, events) = submit_with_client(&ws, &server);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = events[0]["run_id"].as_str().unwrap();
    let (_, viewer) = create_token(&ws, "reader", "viewer");
    let url = server.url();
    let client = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--server", url.as_str()];
        all.extend_from_slice(args);
        let out = ws
            .command(&all)
            .env("KAMACHIQ_TOKEN", &viewer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let runs = client(&["runs", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["id"], run);
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["tenant"], "default");

    let status = client(&["status", run, "--json"]);
    assert_eq!(status["id"], run);
    assert_eq!(status["state"], "succeeded");
    let deliverables: Vec<(&str, &str)> = status["deliverables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(deliverables, [("a", "succeeded"), ("b", "succeeded")]);
}

#[test]
fn the_client_without_a_token_is_refused_with_exit_code_2() {
    let ws = Workspace::new();
    let server = Server::start(&ws, &[]);
    let out = ws.run(&["--server", &server.url(), "runs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "error: --server {} needs a token: set KAMACHIQ_TOKEN (or pass --token)\n",
            server.url()
        )
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_revoked_token_stops_working_within_the_cache_time() {
    let ws = Workspace::new();
    let server = Server::start(&ws, &[]);
    let (id, secret) = create_token(&ws, "ci", "viewer");
    let runs = || {
        ws.command(&["--server", &server.url(), "runs"])
            .env("KAMACHIQ_TOKEN", &secret)
            .output()
            .unwrap()
    };
    let out = runs();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let home = home(&ws);
    let out = ws.run(&["--home", &home, "token", "revoke", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The server remembers a token for five seconds; a revoke from another process takes
    // effect once that has passed.
    let revoked = Instant::now();
    let out = loop {
        let out = runs();
        if out.status.code() != Some(0) || revoked.elapsed() > Duration::from_secs(15) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: the server answered 401: unknown or revoked token (unauthenticated)\n"
    );
}

#[test]
fn sigterm_hands_a_running_step_back_and_the_next_server_finishes_it() {
    let ws = Workspace::new();
    let log = ws.path().join("starts.log");
    let plan = ws.write(
        "plan.yaml",
        &format!(
            "repo: {repo}\ndeliverables:\n  - {{id: slow, steps: [{{name: dev, run: 'echo start >> {log}; sleep 3; echo done > out.txt'}}]}}\n",
            repo = ws.repo().display(),
            log = log.display()
        ),
    );
    let (_, secret) = create_token(&ws, "ci", "operator");
    let mut server = Server::start(&ws, &[]);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "-X", "POST"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {secret}"))
        .args(["-H", "Content-Type: application/yaml", "--data-binary"])
        .arg(format!("@{}", plan.display()))
        .arg(format!("{}/v1/plans/execute", server.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let accepted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = accepted["run_id"].as_str().unwrap().to_owned();

    wait_for_status(&ws, &run, Duration::from_secs(30), |s| {
        s["deliverables"][0]["state"] == "running"
    });
    wait_for_text(&log, "start");
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert_eq!(wait_for_no_steps(&run), 0, "no step outlives the server");
    let stopped = local_status(&ws, &run);
    assert_eq!(stopped["state"], "running", "handed back, not ended");
    assert_eq!(
        stopped["driver"],
        serde_json::Value::Null,
        "the lease was given back"
    );

    let _next = Server::start(&ws, &[]);
    let status = wait_for_status(&ws, &run, Duration::from_secs(60), |s| {
        s["state"] != "running"
    });
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["deliverables"][0]["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nstart\n",
        "the interrupted step ran again"
    );
    assert_eq!(git(&ws.repo(), &["show", "main:out.txt"]), "done");
}

#[test]
fn a_killed_local_run_is_adopted_by_the_server_once_its_lease_expires() {
    let ws = Workspace::new();
    let config = ws.write(
        "short-leases.toml",
        "[engine]\nlease_ttl = \"2s\"\nheartbeat = \"500ms\"\n",
    );
    let config = config.to_str().unwrap();
    let log = ws.path().join("starts.log");
    ws.write(
        "plan.yaml",
        &format!(
            "repo: service\ndeliverables:\n  - {{id: slow, steps: [{{name: dev, run: 'echo start >> {log}; sleep 3; echo done > out.txt'}}]}}\n",
            log = log.display()
        ),
    );
    let server = Server::start(&ws, &["--config", config]);
    let home = home(&ws);
    let mut local = ws.spawn(&[
        "--home",
        &home,
        "--config",
        config,
        "run",
        "plan.yaml",
        "--json",
    ]);
    let events = read_events_until(&mut local, |e| e["kind"] == "run_started");
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    wait_for_text(&log, "start");
    signal(&local, Signal::SIGKILL);
    local.wait().unwrap();

    let status = wait_for_status(&ws, &run, Duration::from_secs(60), |s| {
        s["state"] != "running"
    });
    assert_eq!(status["state"], "succeeded", "{}", server.stderr_text());
    assert_eq!(status["deliverables"][0]["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nstart\n",
        "the killed step ran again on the server"
    );
    assert_eq!(git(&ws.repo(), &["show", "main:out.txt"]), "done");
}

#[test]
fn logs_through_the_client_says_it_reads_the_local_store() {
    let ws = Workspace::new();
    let server = Server::start(&ws, &[]);
    let (_, secret) = create_token(&ws, "ci", "viewer");
    let out = ws
        .command(&["--server", &server.url(), "logs", "latest", "d"])
        .env("KAMACHIQ_TOKEN", &secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: `kamachiq logs` reads the local store; run it where the server's database is (without --server)\n"
    );
    assert_eq!(stdout(&out), "");
}
