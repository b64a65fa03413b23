//! Circuit breakers, as outcomes arrive. The group-commit writer tells the governor which
//! tenants had action outcomes committed; for a governed tenant the governor reads the new
//! outcomes from the store (its own and any other process's, in commit order), adds them to the
//! tenant's window buffer ([`Recent`], loaded for the longest rule window on first use), and
//! evaluates the tenant's enabled rules ([`Breakers::evaluate_all`], compiled programs cached).
//! A trip applies its effect to the stored state and records a breaker event, audited as
//! `breaker:<rule>`, with a `breaker_tripped` event on the run whose outcome tripped it, in one
//! transaction. The whole path is a few queries after the commit: the state has changed within
//! milliseconds of the breaching outcome, where the seed's service polled every minute.
//!
//! An ungoverned tenant costs one cached look-up per batch (its governance is checked again at
//! most once a second). The state change is compare-and-set on the tenant's governance version,
//! so two processes that trip together do not overwrite each other; each records what it saw.
//! While a rule's event is unresolved, a breach of that rule (and action type) that would
//! change nothing (a revert at L3 with an empty whitelist, a pause of a paused type, an alert)
//! is not recorded again: the event is the incident, and resolving it re-arms the rule.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::{Duration, Instant};

use kamachiq_domain::{RunId, TenantId, Timestamp};
use kamachiq_governance::breaker::horizon_for;
use kamachiq_governance::{Breakers, Effect, Phase, Recent, Rule, effect};
use kamachiq_policy::Action;
use kamachiq_store::{BreakerEvent, Governed};
use tokio::sync::mpsc;

use crate::Error;
use crate::engine::Inner;

/// What the governor is told.
#[derive(Debug)]
pub enum Notice {
    /// Outcomes of the tenant's actions were committed.
    Outcomes(TenantId),
    /// The tenant's governance changed in this process: read it again.
    Changed(TenantId),
    /// Answer once every notice sent before this one was handled (a command that exits
    /// right after its last outcome waits for its breakers this way).
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Notice {
    /// Whether `self` is the same notice as `other`, for a batch read at once.
    fn same(&self, other: &Notice) -> bool {
        match (self, other) {
            (Notice::Outcomes(a), Notice::Outcomes(b))
            | (Notice::Changed(a), Notice::Changed(b)) => a == b,
            _ => false,
        }
    }
}

/// How long what the governor knows of a tenant is trusted before its version is read again.
const REFRESH: Duration = Duration::from_secs(1);
/// The shortest buffer kept, whatever the rules' windows.
const MIN_HORIZON: Duration = Duration::from_secs(60);
/// Most outcomes read from the store at once.
const PAGE: u32 = 1_000;
/// Attempts at recording a trip when the tenant's governance keeps moving under it.
const ATTEMPTS: usize = 3;

/// What the governor keeps of one tenant.
#[derive(Debug)]
enum Watch {
    Ungoverned { checked: Instant },
    Governed(Box<Tracked>),
}

#[derive(Debug)]
struct Tracked {
    governed: Governed,
    rules: Vec<Rule>,
    /// Rules (and action types) with an unresolved event.
    open: HashSet<(String, Option<Action>)>,
    recent: Recent,
    /// The tenant's last outcome read.
    last_seq: i64,
    /// The run of the latest outcome read, for the event of a trip.
    last_run: Option<RunId>,
    checked: Instant,
}

/// The sending side, held by the engine and its writer.
#[derive(Clone, Debug)]
pub(crate) struct Governor {
    tx: mpsc::UnboundedSender<Notice>,
}

impl Governor {
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<Notice>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Notice> {
        self.tx.clone()
    }

    pub(crate) fn notify(&self, notice: Notice) {
        let _ = self.tx.send(notice);
    }
}

/// Runs the governor until every sender is gone or the engine is dropped.
pub(crate) async fn run(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Notice>) {
    let breakers = Breakers::new();
    let mut watches: HashMap<TenantId, Watch> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut notices = vec![first];
        while let Ok(more) = rx.try_recv() {
            if !notices.iter().any(|n| n.same(&more)) {
                notices.push(more);
            }
        }
        let Some(inner) = inner.upgrade() else { break };
        let mut flushed = Vec::new();
        for notice in notices {
            match notice {
                Notice::Flush(reply) => flushed.push(reply),
                Notice::Changed(tenant) => {
                    watches.remove(&tenant);
                }
                Notice::Outcomes(tenant) => {
                    if let Err(e) = evaluate(&inner, &breakers, &mut watches, &tenant).await {
                        tracing::warn!(tenant = %tenant, error = %e,
                            "cannot evaluate the tenant's circuit breakers; they are judged again on its next outcome");
                        watches.remove(&tenant);
                    }
                }
            }
        }
        for reply in flushed {
            let _ = reply.send(());
        }
    }
}

/// Brings what is known of `tenant` up to date; `None` when it is not governed.
async fn refresh<'w>(
    inner: &Inner,
    watches: &'w mut HashMap<TenantId, Watch>,
    tenant: &TenantId,
) -> Result<Option<&'w mut Tracked>, Error> {
    let fresh = match watches.get(tenant) {
        Some(Watch::Ungoverned { checked }) => checked.elapsed() < REFRESH,
        Some(Watch::Governed(t)) => t.checked.elapsed() < REFRESH,
        None => false,
    };
    if !fresh {
        let version = inner.store.policy_stamp(tenant).await?.governance_version;
        let current = match watches.get_mut(tenant) {
            Some(Watch::Governed(t)) if version != 0 && t.governed.version == version => {
                t.checked = Instant::now();
                true
            }
            _ => false,
        };
        if !current {
            let watch = match load(inner, tenant).await? {
                Some(tracked) => Watch::Governed(Box::new(tracked)),
                None => Watch::Ungoverned {
                    checked: Instant::now(),
                },
            };
            watches.insert(tenant.clone(), watch);
        }
    }
    Ok(match watches.get_mut(tenant) {
        Some(Watch::Governed(t)) => Some(&mut **t),
        _ => None,
    })
}

/// Reads a tenant's governance, rules, open events and the outcomes of its longest window.
async fn load(inner: &Inner, tenant: &TenantId) -> Result<Option<Tracked>, Error> {
    let store = &inner.store;
    let Some(governed) = store.governance(tenant).await? else {
        return Ok(None);
    };
    let rules = store.breaker_rules(tenant).await?;
    let open = store
        .breaker_events(tenant, true, None, 10_000)
        .await?
        .into_iter()
        .map(|e| (e.rule, e.action_type))
        .collect();
    let horizon = horizon_for(&rules).max(MIN_HORIZON);
    let seq_before = store.last_action_seq(tenant).await?;
    let now = inner.clock.now();
    let from = Timestamp::from_millis(
        now.as_millis()
            .saturating_sub(i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX)),
    );
    let loaded = store
        .actions(tenant, from, Timestamp::from_millis(i64::MAX))
        .await?;
    let mut recent = Recent::new(horizon);
    let mut last_seq = seq_before;
    let mut last_run = None;
    for a in loaded {
        last_seq = last_seq.max(a.seq);
        if a.run.is_some() {
            last_run = a.run;
        }
        recent.push(a.record);
    }
    Ok(Some(Tracked {
        governed,
        rules,
        open,
        recent,
        last_seq,
        last_run,
        checked: Instant::now(),
    }))
}

/// Reads the tenant's new outcomes and judges its rules over them, recording what trips.
async fn evaluate(
    inner: &Inner,
    breakers: &Breakers,
    watches: &mut HashMap<TenantId, Watch>,
    tenant: &TenantId,
) -> Result<(), Error> {
    for _ in 0..ATTEMPTS {
        let Some(tracked) = refresh(inner, watches, tenant).await? else {
            return Ok(());
        };
        loop {
            let page = inner
                .store
                .actions_after(tenant, tracked.last_seq, PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            for a in page {
                tracked.last_seq = a.seq;
                if a.run.is_some() {
                    tracked.last_run = a.run;
                }
                tracked.recent.push(a.record);
            }
            if !full {
                break;
            }
        }
        let now = inner.clock.now();
        tracked.recent.prune(now);
        if trip(inner, breakers, tracked, now).await? {
            return Ok(());
        }
        // The tenant's governance moved under a trip: read it again and judge again.
        watches.remove(tenant);
    }
    tracing::warn!(tenant = %tenant, "the tenant's governance kept changing while a circuit breaker tripped; judged again on its next outcome");
    Ok(())
}

/// Records every trip of the tenant's rules at `now`; false when its governance moved under
/// one (nothing more is recorded then).
async fn trip(
    inner: &Inner,
    breakers: &Breakers,
    tracked: &mut Tracked,
    now: Timestamp,
) -> Result<bool, Error> {
    let evaluation = breakers.evaluate_all(&tracked.rules, &tracked.recent, now);
    for e in &evaluation.errors {
        tracing::warn!(tenant = %tracked.governed.tenant, error = %e, "a circuit breaker rule cannot be evaluated");
    }
    for trip in evaluation.trips {
        let effect = effect(&tracked.governed.state, &trip);
        let unchanged = match &effect {
            Effect::RevertToL3 { from, cleared } => *from == Phase::L3 && cleared.is_empty(),
            Effect::Pause { already_paused, .. } => *already_paused,
            Effect::Alert => true,
        };
        let key = (trip.rule.name.clone(), trip.action_type);
        if unchanged && tracked.open.contains(&key) {
            continue;
        }
        let mut state = tracked.governed.state.clone();
        state.apply(&effect, now);
        let event = BreakerEvent {
            id: format!("bke-{}", ulid::Ulid::generate().to_string().to_lowercase()),
            tenant: tracked.governed.tenant.clone(),
            rule: trip.rule.name.clone(),
            severity: trip.rule.severity,
            action: trip.rule.action,
            action_type: trip.action_type,
            effect: effect.clone(),
            metrics: trip.metrics.clone(),
            run: tracked.last_run.clone(),
            at: now,
            resolved_at: None,
            resolved_by: None,
            note: None,
        };
        let Some((version, run_event)) = inner
            .store
            .trip_breaker(&tracked.governed, &state, &event)
            .await?
        else {
            return Ok(false);
        };
        tracing::warn!(tenant = %event.tenant, rule = %event.rule, severity = ?event.severity,
            effect = ?effect, event = %event.id, phase = %state.current_phase,
            "circuit breaker tripped");
        tracked.governed.state = state;
        tracked.governed.version = version;
        tracked.open.insert(key);
        if let Some(run_event) = run_event {
            let _ = inner.events.send(run_event);
        }
        // Decisions of this process see the new state at once; blocked work is judged again.
        inner.gate.forget(&tracked.governed.tenant);
        inner
            .store
            .requeue_due_now(&tracked.governed.tenant, now)
            .await?;
        inner.requeue_due.notify_one();
    }
    Ok(true)
}
