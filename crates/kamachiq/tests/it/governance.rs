//! The seed 002 runbook (autonomy governance) walked with the real binary: a `kamachiq serve`
//! on 127.0.0.1, the CLI with `--server` and tokens of each role, and curl-like calls to the
//! runbook's `/api/...` paths. Morning checks; readiness brought to 95% (outcomes seeded in the
//! store, attestations, an emergency stop drill, a scrape); the Friday cycle and its proposal;
//! approvals refused for the wrong role and the requester, given by the tech lead; the phase
//! change; a run whose failing step (approved through the inbox) trips "High Error Rate" and
//! reverts to L3 within a second; the events resolved; and a rollback by API instead of SQL.

use std::time::{Duration, Instant};

use kamachiq_domain::{TenantId, Timestamp};
use kamachiq_governance::Outcome;
use kamachiq_policy::Action;
use kamachiq_store::{AuditEntry, Change, NewAction, Store};
use serde_json::{Value, json};

use crate::serve::{Server, home};
use crate::support::{Workspace, read_events_until, stderr, stdout};

const TENANT: &str = "default";

/// A token of `tenant` with `roles`; its secret.
fn token(ws: &Workspace, tenant: &str, name: &str, roles: &[&str]) -> String {
    let home = home(ws);
    let mut args = vec![
        "--home", &home, "token", "create", "--tenant", tenant, "--name", name,
    ];
    for role in roles {
        args.extend_from_slice(&["--role", role]);
    }
    args.push("--json");
    ws.json(&args)["secret"].as_str().unwrap().to_owned()
}

/// `kamachiq --server URL ARGS` with `secret` as the token.
fn cli(ws: &Workspace, server: &Server, secret: &str, args: &[&str]) -> std::process::Output {
    let url = server.url();
    let mut all = vec!["--server", url.as_str()];
    all.extend_from_slice(args);
    ws.command(&all)
        .env("KAMACHIQ_TOKEN", secret)
        .output()
        .unwrap()
}

fn cli_json(ws: &Workspace, server: &Server, secret: &str, args: &[&str]) -> Value {
    let out = cli(ws, server, secret, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A curl of the runbook: `method path` with an optional JSON body; the status and the JSON.
struct Curl {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Curl {
    fn new(server: &Server) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            base: server.url(),
            http: reqwest::Client::new(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        secret: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(secret) = secret {
                request = request.bearer_auth(secret);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn get(&self, path: &str, secret: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(secret), None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn text(&self, path: &str, secret: &str) -> String {
        match self.call("GET", path, Some(secret), None).1 {
            Value::String(text) => text,
            other => other.to_string(),
        }
    }
}

/// The store the server writes, opened by the test to set up what a week of work would have
/// left (outcomes), and to move the phase's start back: waiting days in a test is no test.
async fn store(ws: &Workspace) -> Store {
    Store::open_sqlite(&ws.path().join(".kamachiq").join("kamachiq.db"))
        .await
        .unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// Moves the tenant's phase start an hour back (compare-and-set, audited as the test), and
/// records 120 successful outcomes half an hour ago: a healthy phase, out of the five-minute
/// windows the breakers watch.
async fn a_healthy_hour(ws: &Workspace) {
    let store = store(ws).await;
    let tenant = TenantId::parse(TENANT).unwrap();
    let governed = store.governance(&tenant).await.unwrap().unwrap();
    let mut state = governed.state.clone();
    state.phase_started_at = Timestamp::from_millis(now().as_millis() - 3_600_000);
    let audit = AuditEntry {
        tenant: tenant.clone(),
        actor: "test:setup".into(),
        action: "test_phase_started_earlier".into(),
        subject: TENANT.into(),
        detail: json!({}),
    };
    assert!(
        store
            .save_governance(
                &tenant,
                governed.version,
                &state,
                &governed.settings,
                &audit,
                now()
            )
            .await
            .unwrap()
            .is_some()
    );
    let changes: Vec<Change> = (0..120)
        .map(|i| {
            Change::Acted(Box::new(NewAction {
                tenant: tenant.clone(),
                run: None,
                deliverable: None,
                action: if i % 2 == 0 {
                    Action::RunStep
                } else {
                    Action::Merge
                },
                outcome: Outcome::Succeeded,
                duration_ms: 2_000,
                tokens: 0,
                cost_micro_usd: 0,
                critical: false,
            }))
        })
        .collect();
    let half_an_hour_ago = Timestamp::from_millis(now().as_millis() - 1_800_000);
    store.apply(half_an_hour_ago, &changes).await.unwrap();
    store.close().await;
}

#[test]
fn the_seed_runbook_from_morning_checks_to_a_rollback() {
    let ws = Workspace::new();
    let home = home(&ws);
    let admin = token(&ws, TENANT, "admin", &["admin"]);
    let ines = token(&ws, TENANT, "ops.ines", &["operator"]);
    let rui = token(&ws, TENANT, "lead.rui", &["operator", "tech-lead"]);
    let ana = token(&ws, TENANT, "lead.ana", &["tech-lead"]);
    let otto = token(&ws, TENANT, "ops.otto", &["ops-lead"]);
    let prometheus = token(&ws, TENANT, "prometheus", &["metrics"]);
    let server = Server::start(&ws, &[]);
    let curl = Curl::new(&server);

    // Governance is opt-in: an admin enables it, at L3 in supervised mode.
    let state = cli_json(&ws, &server, &admin, &["governance", "enable", "--json"]);
    assert_eq!(
        (
            state["currentPhase"].clone(),
            state["commandWhitelist"].clone()
        ),
        (json!("L3"), json!([]))
    );

    // Morning checks.
    let (status, health) = curl.call("GET", "/health", None, None);
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
    assert_eq!(
        curl.get("/api/circuit-breaker/events/unresolved", &ines),
        json!([])
    );
    let score = curl.get("/api/readiness/score", &ines)["score"]
        .as_f64()
        .unwrap();
    assert!(score < 0.90, "investigation needed at first: {score}");

    // A healthy phase, the facts kamachiq measures, and what people attest.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(a_healthy_hour(&ws));
    assert!(
        curl.text("/metrics", &prometheus)
            .contains("kamachiq_governance_phase_info")
    );
    for args in [
        &["stop", "--reason", "drill", "--no-wait"][..],
        &["resume-all"][..],
    ] {
        let out = cli(&ws, &server, &admin, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    for item in [
        "tech.rollback_rehearsed",
        "process.runbook",
        "process.incident_drill",
        "org.on_call",
        "org.stakeholder_signoff",
        "org.escalation_contacts",
    ] {
        let evidence = format!("https://wiki.example/{item}");
        let attested = cli_json(
            &ws,
            &server,
            &ana,
            &[
                "readiness",
                "attest",
                item,
                "--evidence",
                &evidence,
                "--json",
            ],
        );
        assert_eq!(attested["by"], "lead.ana");
    }
    let readiness = curl.get("/api/readiness/current", &ines);
    assert_eq!(readiness["score"], 0.95);
    assert_eq!(readiness["overall"]["blockers"], json!([]));

    // Friday: the weekly cycle, by a person who is also a tech lead.
    let (status, report) = curl.call("POST", "/api/governance/run-cycle", Some(&rui), None);
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["recommendation"]["kind"], "expand");
    assert_eq!(curl.get("/api/governance/reports/latest", &ines), report);
    let proposal = curl.get("/api/governance/proposals", &ines)[0].clone();
    assert_eq!(proposal["targetPhase"], "L3+");
    assert_eq!(proposal["whitelistAdd"], json!(["provision"]));
    assert_eq!(proposal["requiredApprovers"], json!(["tech-lead"]));
    assert_eq!(proposal["validationDays"], 14);
    let id = proposal["id"].as_str().unwrap();

    // Approvals: not the ops lead (wrong role), not the requester (four eyes), not a name
    // typed in the body; the tech lead, as herself.
    let approve = |secret: &str, body: Value| {
        curl.call(
            "POST",
            &format!("/api/governance/proposals/{id}/approve"),
            Some(secret),
            Some(body),
        )
    };
    let (status, problem) = approve(&otto, json!({}));
    assert_eq!(
        (status, problem["code"].clone()),
        (403, json!("approval_refused"))
    );
    let (status, problem) = approve(&rui, json!({}));
    assert_eq!(
        (status, problem["detail"].clone()),
        (
            403,
            json!("lead.rui asked for this proposal and cannot approve it")
        )
    );
    let (status, problem) = approve(&ana, json!({"approvedBy": "tech-lead"}));
    assert_eq!(
        (status, problem["field"].clone()),
        (422, json!("approvedBy"))
    );
    let out = cli(
        &ws,
        &server,
        &ana,
        &["governance", "approve", id, "--comment", "week looks clean"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is now at L3+ (whitelist: provision)"),
        "{}",
        stdout(&out)
    );
    let state = curl.get("/api/governance/state", &ines);
    assert_eq!(state["currentPhase"], "L3+");
    assert_eq!(state["commandWhitelist"], json!(["provision"]));

    // A run whose step keeps failing: provisioning runs unattended at L3+, the step waits for
    // a person in the approvals inbox; approved, it fails three times.
    ws.write(
        "plan.yaml",
        "repo: service\ndeliverables:\n  - {id: flaky, steps: [{name: dev, run: 'exit 1', retries: 2, backoff: 10ms}]}\n",
    );
    let url = server.url();
    let mut follower = ws
        .command(&[
            "--server",
            &url,
            "run",
            "plan.yaml",
            "--repo",
            "service",
            "--json",
        ])
        .env("KAMACHIQ_TOKEN", &ines)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = read_events_until(&mut follower, |e| e["kind"] == "run_started");
    let run = started[0]["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let list = cli_json(&ws, &server, &ines, &["approvals", "list", "--json"]);
        if let Some(first) = list.as_array().unwrap().first() {
            break first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the step never waited for approval"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(waiting["operation"], "run_step dev of flaky");
    assert_eq!(waiting["cause"], "not_whitelisted");
    let approval = waiting["id"].as_str().unwrap();
    let out = cli(&ws, &server, &ines, &["approvals", "approve", approval]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an operator is no approver: {}",
        stderr(&out)
    );
    let out = cli(
        &ws,
        &server,
        &ana,
        &["approvals", "approve", approval, "--comment", "try it"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // "High Error Rate" reverts to L3 within a second of the failing outcome's commit;
    // "Repeated Command Failures" pauses run_step on the third.
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = curl.get("/api/circuit-breaker/events/unresolved", &ines);
        if events.as_array().unwrap().len() == 2 {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the breakers never tripped twice: {events}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let state = curl.get("/api/governance/state", &ines);
    assert_eq!(state["currentPhase"], "L3");
    assert_eq!(state["commandWhitelist"], json!([]));
    assert_eq!(state["pausedActions"], json!(["run_step"]));
    let by_rule = |name: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ruleName"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {events}"))
            .clone()
    };
    let reverted = by_rule("High Error Rate");
    assert_eq!(reverted["severity"], "critical");
    assert_eq!(reverted["effect"]["kind"], "revert_to_l3");
    assert_eq!(reverted["effect"]["from"], "L3+");
    assert_eq!(reverted["runId"], run.as_str());
    assert_eq!(
        by_rule("Repeated Command Failures")["effect"]["kind"],
        "pause"
    );
    // The run failed: its one deliverable's step failed after its retries.
    assert_eq!(follower.wait().unwrap().code(), Some(1));
    let status = ws.json(&["--home", &home, "status", &run, "--json"]);
    let first_failure = status["deliverables"][0]["steps"][0].clone();
    assert_eq!(first_failure["state"], "failed");
    let committed: Timestamp =
        serde_json::from_value(first_failure["finished_at"].clone()).unwrap();
    let tripped: Timestamp = serde_json::from_value(reverted["timestamp"].clone()).unwrap();
    let reaction = tripped.since(committed);
    println!(
        "breaker reaction (real binary): failing outcome committed -> reverted to L3 in {} ms",
        reaction.as_millis()
    );
    assert!(reaction < Duration::from_secs(1), "{reaction:?}");

    // Resolved once the cause is fixed; the pause lifts with its event.
    for event in events.as_array().unwrap() {
        let id = event["id"].as_str().unwrap();
        let (status, resolved) = curl.call(
            "POST",
            &format!("/api/circuit-breaker/events/{id}/resolve"),
            Some(&ines),
            None,
        );
        assert_eq!(
            (status, resolved["resolved"].clone()),
            (200, json!(true)),
            "{resolved}"
        );
    }
    assert_eq!(
        curl.get("/api/circuit-breaker/events/unresolved", &ines),
        json!([])
    );
    assert_eq!(
        curl.get("/api/governance/state", &ines)["pausedActions"],
        json!([])
    );

    // A rollback by API where the seed edited SQL: a staging tenant at L4 goes back to L3+.
    let staging_admin = token(&ws, "staging", "admin", &["admin"]);
    let staging_ops = token(&ws, "staging", "ops.otto", &["ops-lead"]);
    let state = cli_json(
        &ws,
        &server,
        &staging_admin,
        &["governance", "enable", "--phase", "L4", "--json"],
    );
    assert_eq!(state["commandWhitelist"], json!(["provision", "run_step"]));
    let (status, state) = curl.call(
        "POST",
        "/api/governance/rollback",
        Some(&staging_ops),
        Some(json!({"targetPhase": "L3+", "reason": "INC-7: flaky deploys"})),
    );
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["currentPhase"], "L3+");
    assert_eq!(state["commandWhitelist"], json!(["provision"]));
    let trail = ws.json(&[
        "--home", &home, "audit", "list", "--tenant", "staging", "--json",
    ]);
    let rollback = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "phase_rolled_back")
        .unwrap();
    assert_eq!(rollback["actor"], "ops.otto");
    assert_eq!(rollback["detail"]["reason"], "INC-7: flaky deploys");
    // Still the default tenant's own business: its phase is untouched.
    assert_eq!(
        curl.get("/api/governance/state", &ines)["currentPhase"],
        "L3"
    );

    // The governance metrics a dashboard reads.
    let metrics = curl.text("/metrics", &prometheus);
    for line in [
        "kamachiq_governance_phase_info{tenant=\"default\",phase=\"L3\"} 1",
        "kamachiq_governance_phase_info{tenant=\"staging\",phase=\"L3+\"} 1",
        "kamachiq_governance_breaker_events_total{severity=\"critical\"} 1",
        "kamachiq_governance_breaker_events_total{severity=\"high\"} 1",
        "kamachiq_governance_breaker_events_unresolved 0",
        "kamachiq_approvals_pending{tenant=\"default\"} 0",
        "kamachiq_approval_latency_seconds_count 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
}

/// The readiness checklist on the local store: printed as JSON, edited, set back; a file with
/// a bad item is refused with exit 2, naming it, and changes nothing.
#[test]
fn the_checklist_is_edited_as_json_on_the_local_store() {
    let ws = Workspace::new();
    let out = ws.run(&["governance", "enable", "--tenant", "team-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let checklist = ws.json(&["readiness", "checklist", "--tenant", "team-a", "--json"]);
    let mut edited = checklist.clone();
    let items = edited["items"].as_array_mut().unwrap();
    items.pop();
    items[0]["weight"] = json!(10);
    let kept = items.len();

    // `readiness checklist --set` with `edited` spoiled by `spoil`: exit 2, and stderr.
    let refused = |name: &str, spoil: &dyn Fn(&mut Value)| {
        let mut bad = edited.clone();
        spoil(&mut bad);
        let file = ws.write(name, &bad.to_string());
        let out = ws.run(&[
            "readiness",
            "checklist",
            "--tenant",
            "team-a",
            "--set",
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        stderr(&out)
    };
    let why = refused("bad.json", &|c| {
        c["items"][0]["category"] = json!("financial");
    });
    assert!(
        why.contains("bad.json") && why.contains("financial"),
        "{why}"
    );
    let why = refused("duplicate.json", &|c| {
        c["items"][1]["id"] = c["items"][0]["id"].clone();
    });
    assert!(why.contains("the id is used by another item"), "{why}");
    assert_eq!(
        ws.json(&["readiness", "checklist", "--tenant", "team-a", "--json"]),
        checklist,
        "nothing changed"
    );

    let file = ws.write("checklist.json", &edited.to_string());
    let set = ws.json(&[
        "readiness",
        "checklist",
        "--tenant",
        "team-a",
        "--set",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(set, edited);
    assert_eq!(set["items"].as_array().unwrap().len(), kept);
    let out = ws.run(&["readiness", "checklist", "--tenant", "team-a"]);
    assert!(stdout(&out).contains("attested"), "{}", stdout(&out));
    let trail = ws.json(&["audit", "list", "--json"]);
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "checklist_changed"),
        "{trail:#}"
    );
}
