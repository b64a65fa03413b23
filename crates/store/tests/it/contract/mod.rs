//! The store contract, run against SQLite and PostgreSQL (see `main.rs`).

mod access;
mod approvals;
mod governance;
mod policy;
mod rollbacks;
mod runs;
mod steps;

pub use access::*;
pub use approvals::*;
pub use governance::*;
pub use policy::*;
pub use rollbacks::*;
pub use runs::*;
pub use steps::*;

use std::time::Duration;

use kamachiq_domain::plan::{Format, Source};
use kamachiq_domain::run::StepState;
use kamachiq_domain::{
    DeliverableId, DeliverableState, Plan, Reason, ReasonCode, RunId, StepName, Timestamp,
};
use kamachiq_store::{
    Applied, Change, ClaimKind, LeaseKey, NewRun, Rejected, StepEnd, StepRef, Store, Then,
};

pub(super) const OWNER: &str = "host-a:100:x";

pub(super) fn t(seconds: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + seconds * 1000)
}

pub(super) fn did(id: &str) -> DeliverableId {
    DeliverableId::parse(id).unwrap()
}

pub(super) fn run_id() -> RunId {
    RunId::parse(ulid::Ulid::generate().to_string().to_lowercase()).unwrap()
}

/// A plan from `(id, [dependencies])`, each deliverable with steps `dev` and `qa`.
pub(super) fn plan(tenant: &str, nodes: &[(&str, &[&str])]) -> Plan {
    let mut yaml = format!("tenant: {tenant}\ndeliverables:\n");
    for (id, deps) in nodes {
        yaml.push_str(&format!(
            "  - id: {id}\n    dependencies: [{}]\n    steps:\n      - {{name: dev, run: 'true'}}\n      - {{name: qa, run: 'true'}}\n",
            deps.join(", ")
        ));
    }
    Plan::parse(&Source::new("test.yaml", yaml, Format::Yaml)).unwrap()
}

pub(super) async fn create(store: &Store, plan: Plan) -> RunId {
    let id = run_id();
    store
        .create_run(&NewRun {
            id: id.clone(),
            plan,
            repo: Some("/srv/repo".into()),
            branch: Some("main".into()),
            concurrency: 4,
            at: t(0),
            driver: None,
            submitted_by: None,
        })
        .await
        .unwrap();
    id
}

pub(super) async fn one(store: &Store, at: i64, change: Change) -> Result<Applied, Rejected> {
    let mut outcome = store.apply(t(at), &[change]).await.unwrap();
    outcome.results.remove(0)
}

pub(super) fn claim_change(run: &RunId, id: &str, takeover: bool) -> Change {
    Change::Claim {
        run: run.clone(),
        deliverable: did(id),
        owner: OWNER.into(),
        lease_until: t(30),
        kind: if takeover {
            ClaimKind::Takeover
        } else {
            ClaimKind::Ready
        },
        start: None,
    }
}

pub(super) fn claim_starting(run: &RunId, id: &str, first: StepRef) -> Change {
    match claim_change(run, id, false) {
        Change::Claim {
            run,
            deliverable,
            owner,
            lease_until,
            kind,
            ..
        } => Change::Claim {
            run,
            deliverable,
            owner,
            lease_until,
            kind,
            start: Some(first),
        },
        other => other,
    }
}

pub(super) fn step(index: u32, name: &str) -> StepRef {
    StepRef {
        index,
        name: StepName::parse(name).unwrap(),
    }
}

pub(super) async fn claim(store: &Store, run: &RunId, id: &str) -> LeaseKey {
    match one(store, 1, claim_change(run, id, false)).await {
        Ok(Applied::Claimed { attempt, .. }) => LeaseKey {
            run: run.clone(),
            deliverable: did(id),
            attempt,
        },
        other => panic!("claim of {id}: {other:?}"),
    }
}

/// Claims and succeeds `id`; returns the deliverables that became ready.
pub(super) async fn complete(store: &Store, run: &RunId, id: &str) -> Vec<String> {
    let lease = claim(store, run, id).await;
    let outcome = store
        .apply(t(2), &[Change::Succeeded { lease, merge: None }])
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Succeeded)], "success of {id}");
    let mut ready: Vec<String> = outcome.ready.iter().map(|(_, d)| d.to_string()).collect();
    ready.sort();
    ready
}

pub(super) async fn states(store: &Store, run: &RunId) -> Vec<(String, DeliverableState)> {
    store
        .deliverables(run)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id.to_string(), d.state))
        .collect()
}

pub(super) fn step_end(
    lease: &LeaseKey,
    index: u32,
    attempt: u32,
    state: StepState,
    output: &str,
) -> Change {
    Change::StepFinished(Box::new(StepEnd {
        lease: lease.clone(),
        index,
        step: StepName::parse(if index == 0 { "dev" } else { "qa" }).unwrap(),
        step_attempt: attempt,
        state,
        exit_code: Some(if state == StepState::Succeeded { 0 } else { 1 }),
        reason: (state == StepState::Failed).then(|| Reason::new(ReasonCode::StepFailed, "exit 1")),
        output: output.into(),
        output_bytes: output.len() as u64,
        tokens: 0,
        cost_micro_usd: 0,
        duration: Duration::from_millis(1500),
        advance: state == StepState::Succeeded,
        then: Then::Stay,
    }))
}
