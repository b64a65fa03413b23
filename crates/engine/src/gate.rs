//! The policy gate as the engine meets it: every action it is about to take is described as a
//! policy [`Input`] and decided by the policy crate, under the tenant's settings and policy set
//! in force. Both are cached per tenant and looked at again when their versions move (one cheap
//! read at most every [`REFRESH`]), so a decision costs no database read on the hot path.
//!
//! A stored policy set that no longer compiles (it compiled when it was stored) fails closed:
//! every decision of that tenant is a deny naming the error.
//!
//! For a governed tenant the gate also reads its governance (cached the same way, its version
//! in the same stamp): the policy input carries the real phase, approval mode and paused action
//! types, and after the policy decided, governance says whether a person must approve what the
//! policy allowed ([`kamachiq_governance::needs_approval`]). An ungoverned tenant is decided by
//! policy alone, exactly as before governance existed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kamachiq_domain::{Reason, ReasonCode, Tenant, TenantId};
use kamachiq_governance::{Cause, Requirement, Subject};
use kamachiq_policy::{Decision, Input, PolicySet, Verdict};
use kamachiq_store::{DecisionRecord, Governed, NewApproval, PolicyStamp, StopState, Store};

use crate::Error;
use crate::agents::{Bucket, DaySpend};
use crate::clock::Clock;

/// How long a tenant's cached settings and policies are trusted before their versions are
/// checked again. Changes made through this process are seen at once.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What the gate knows of one tenant.
#[derive(Debug)]
struct Rules {
    tenant: Tenant,
    policies: Result<Option<PolicySet>, String>,
    /// The tenant's governance, when it is governed.
    governance: Option<Arc<Governed>>,
    stamp: PolicyStamp,
    checked: Instant,
}

/// Why a person must approve an action the policy did not deny, as governance says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub cause: Cause,
    pub reason: String,
    /// The tenant approves this one at once (low risk, not whitelisted, auto-approval on).
    pub auto: bool,
}

impl Need {
    /// The reason as the requeue and the approvals inbox show it.
    pub fn as_reason(&self) -> kamachiq_policy::Reason {
        kamachiq_policy::Reason::new(
            format!("governance_{}", cause_code(self.cause)),
            self.reason.clone(),
            "governance",
        )
    }
}

/// The stable name of a cause (`not_whitelisted`, ...).
pub fn cause_code(c: Cause) -> &'static str {
    match c {
        Cause::Paused => "paused",
        Cause::ManualMode => "manual_mode",
        Cause::Policy => "policy",
        Cause::NotWhitelisted => "not_whitelisted",
        Cause::Risk => "risk",
    }
}

/// What lets a deliverable past a decision that holds it back: an operator's override of its
/// requeue entry (everything but the emergency stop), and the actions a person approved
/// through the approvals inbox (each that one action, when it only needs a person).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiver {
    pub overridden: Option<String>,
    pub approved: Vec<String>,
}

impl Waiver {
    /// Whether a person approved the action of `scope` (see [`kamachiq_store::approval_scope`]).
    pub fn covers(&self, scope: &str) -> bool {
        self.approved.iter().any(|s| s == scope)
    }
}

/// A decision and the record that keeps it, with what governance asks beyond it.
#[derive(Clone, Debug)]
pub struct Judged {
    pub decision: Decision,
    pub record: DecisionRecord,
    /// A person must approve what the policy allowed (or asked approval for); `None` for an
    /// ungoverned tenant, or when governance lets the action run.
    pub need: Option<Need>,
    /// How long an approval request for this action would wait.
    pub approval_ttl: Duration,
}

impl Judged {
    /// Whether the decision was a deny by the emergency stop.
    pub fn stopped(&self) -> bool {
        self.decision
            .reasons
            .iter()
            .any(|r| r.code == "emergency_stop")
    }

    /// Whether the action may go ahead, the action being the one of `scope`: allowed by
    /// policy with nothing more asked by governance (or approved at once by the tenant's
    /// low-risk auto-approval); asking for a person whom a person already answered for this
    /// action; or held back but waived by an operator's override. Never past the emergency
    /// stop, and never past a deny but by an override.
    pub fn proceeds(&self, waiver: &Waiver, scope: &str) -> bool {
        if self.stopped() {
            return false;
        }
        if waiver.overridden.is_some() {
            return true;
        }
        match self.decision.verdict {
            Verdict::Deny => false,
            Verdict::RequireApproval => waiver.covers(scope),
            Verdict::Allow => match &self.need {
                None => true,
                Some(need) => need.auto || waiver.covers(scope),
            },
        }
    }

    /// Whether a person must approve the action before it runs (the policy asked, or
    /// governance did): what opens an approval request when it is held back.
    pub fn needs_person(&self) -> bool {
        !self.stopped()
            && match self.decision.verdict {
                Verdict::Deny => false,
                Verdict::RequireApproval => true,
                Verdict::Allow => self.need.as_ref().is_some_and(|n| !n.auto),
            }
    }

    /// The verdict and reasons the requeue keeps for this decision: the policy's, made a
    /// `require_approval` with governance's reason when governance asks for a person.
    pub fn held_as(&self) -> (Verdict, Vec<kamachiq_policy::Reason>) {
        let mut reasons = self.decision.reasons.clone();
        let mut verdict = self.decision.verdict;
        // When the policy itself asked for a person, its reasons say why already.
        if verdict == Verdict::Allow
            && let Some(need) = &self.need
        {
            reasons.push(need.as_reason());
            verdict = Verdict::RequireApproval;
        }
        (verdict, reasons)
    }

    /// What to commit with the action this decision lets through: the decision, and, when
    /// the tenant's low-risk auto-approval is what lets it through, that approval.
    pub fn into_changes(self, waiver: &Waiver, scope: &str) -> Vec<kamachiq_store::Change> {
        use kamachiq_store::Change;
        let auto = self.decision.verdict == Verdict::Allow
            && waiver.overridden.is_none()
            && !waiver.covers(scope)
            && self.need.as_ref().is_some_and(|n| n.auto);
        let approval = if auto { self.auto_approval() } else { None };
        let mut out = vec![Change::Decided(Box::new(self.record))];
        if let Some(approval) = approval {
            out.push(Change::Approval(Box::new(approval)));
        }
        out
    }

    /// The record of an approval granted at once by the tenant's low-risk auto-approval.
    fn auto_approval(&self) -> Option<NewApproval> {
        let need = self.need.as_ref()?;
        let record = &self.record;
        Some(NewApproval {
            id: new_approval_id(),
            requeue_id: None,
            tenant: record.tenant.clone(),
            run: record.run.clone()?,
            deliverable: record.deliverable.clone()?,
            action: record.input.action,
            step: record.input.step.as_ref().map(|s| s.name.clone()),
            risk: self.decision.risk,
            cause: Some(need.cause),
            evidence: kamachiq_store::Evidence {
                reasons: vec![need.as_reason()],
                diff: record.input.diff.clone(),
                steps: Vec::new(),
            },
            requested_at: record.at,
            expires_at: record.at,
            status: kamachiq_store::ApprovalStatus::Approved,
            decided_by: Some(AUTO_APPROVER.to_owned()),
        })
    }

    /// The reason a deliverable shows while this decision holds it back: the first reason
    /// whose code kamachiq knows, else a summary of them all.
    pub fn block_reason(&self) -> Reason {
        let (verdict, reasons) = self.held_as();
        let code = if verdict == Verdict::RequireApproval {
            ReasonCode::ApprovalRequired
        } else {
            reasons
                .iter()
                .find_map(|r| match r.code.as_str() {
                    "emergency_stop" => Some(ReasonCode::EmergencyStop),
                    "residency" => Some(ReasonCode::Residency),
                    "budget_exhausted" => Some(ReasonCode::BudgetExhausted),
                    _ => None,
                })
                .unwrap_or(ReasonCode::PolicyDenied)
        };
        // Each reason's message; its code too where the deliverable's code does not say it.
        let all: Vec<String> = reasons
            .iter()
            .map(|r| {
                if r.code == code.as_str() {
                    r.message.clone()
                } else {
                    format!("{}: {}", r.code, r.message)
                }
            })
            .collect();
        let detail = if all.is_empty() {
            format!("policy answered {}", verdict_text(verdict))
        } else {
            all.join("; ")
        };
        Reason::new(code, detail)
    }
}

/// Who approves what the tenant's low-risk auto-approval lets through.
pub const AUTO_APPROVER: &str = "auto";

/// A new approval request id.
pub fn new_approval_id() -> String {
    format!("apr-{}", ulid::Ulid::generate().to_string().to_lowercase())
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::RequireApproval => "require_approval",
        Verdict::Deny => "deny",
    }
}

/// The engine's policy gate. Cheap to share; one per engine.
#[derive(Debug)]
pub struct Gate {
    store: Store,
    clock: Arc<dyn Clock>,
    rules: Mutex<HashMap<TenantId, Arc<Rules>>>,
    /// Each tenant's spend of the day, as last read from the ledger plus what this process has
    /// not written yet, and when it was read.
    days: Mutex<HashMap<TenantId, (Arc<DaySpend>, Instant)>>,
    /// Each tenant's agent launches.
    launches: Mutex<HashMap<TenantId, Bucket>>,
    /// The emergency stop as last read, and when.
    stop: Mutex<Option<(Option<StopState>, Instant)>>,
}

/// How long the emergency stop's state is trusted before it is read again. Drivers also read
/// it on every watch tick, with their run's state.
pub const STOP_REFRESH: Duration = Duration::from_millis(250);

/// How often a tenant's day spend is read again from the ledger.
pub const DAY_REFRESH: Duration = Duration::from_secs(2);

impl Gate {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            rules: Mutex::new(HashMap::new()),
            days: Mutex::new(HashMap::new()),
            launches: Mutex::new(HashMap::new()),
            stop: Mutex::new(None),
        }
    }

    /// The emergency stop, if it is on (read again when older than [`STOP_REFRESH`]).
    pub async fn emergency_stop(&self) -> Result<Option<StopState>, Error> {
        if let Some((state, read)) = lock(&self.stop).clone()
            && read.elapsed() < STOP_REFRESH
        {
            return Ok(state);
        }
        let state = self.store.emergency_stop().await?;
        *lock(&self.stop) = Some((state.clone(), Instant::now()));
        Ok(state)
    }

    /// Forgets the emergency stop's cached state: it was just changed in this process.
    pub fn forget_stop(&self) {
        *lock(&self.stop) = None;
    }

    /// The tenant's settings in force (the defaults for one never configured).
    pub async fn tenant(&self, tenant: &TenantId) -> Result<Tenant, Error> {
        Ok(self.rules(tenant).await?.tenant.clone())
    }

    /// The tenant's spend of the current UTC day: the ledger's figure (read again when older
    /// than [`DAY_REFRESH`], or when the day changed) plus what this process has booked and
    /// not written yet. Shared by every agent step of the tenant in this process.
    pub async fn day_spend(&self, tenant: &TenantId) -> Result<Arc<DaySpend>, Error> {
        let today = crate::agents::day(self.clock.now());
        let cached = lock(&self.days).get(tenant).cloned();
        if let Some((spend, read)) = &cached {
            let same_day = *lock(&spend.day) == today;
            if same_day && read.elapsed() < DAY_REFRESH {
                return Ok(spend.clone());
            }
        }
        let stored = self.store.tenant_day_spend(tenant, &today).await?;
        let spend = match cached {
            Some((spend, _)) if *lock(&spend.day) == today => spend,
            _ => Arc::new(DaySpend {
                day: Mutex::new(today),
                ..DaySpend::default()
            }),
        };
        spend.stored.tokens.store(stored.tokens, Ordering::Relaxed);
        spend
            .stored
            .cost_micro_usd
            .store(stored.cost_micro_usd, Ordering::Relaxed);
        lock(&self.days).insert(tenant.clone(), (spend.clone(), Instant::now()));
        Ok(spend)
    }

    /// Waits for one of the tenant's agent launches (`per_minute`, with `burst` above that
    /// pace); false when `stop` fired first.
    pub async fn launch(
        &self,
        tenant: &TenantId,
        per_minute: u32,
        burst: u32,
        stop: &tokio_util::sync::CancellationToken,
    ) -> bool {
        loop {
            let wait = {
                let mut buckets = lock(&self.launches);
                let bucket = buckets
                    .entry(tenant.clone())
                    .or_insert_with(|| Bucket::new(burst));
                match bucket.take(per_minute, burst) {
                    Ok(()) => return true,
                    Err(wait) => wait,
                }
            };
            tracing::info!(tenant = %tenant, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "agent launches are at the tenant's rate limit; waiting");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return false,
            }
        }
    }

    /// Decides `input` for `tenant`, with the settings and policies in force. The record is
    /// for the caller to commit with what the decision causes.
    pub async fn decide(&self, tenant: &TenantId, mut input: Input) -> Result<Judged, Error> {
        let rules = self.rules(tenant).await?;
        input.at = self.clock.now();
        input.emergency_stop = self.emergency_stop().await?.is_some();
        if let Some(governed) = &rules.governance {
            let state = &governed.state;
            input.autonomy = kamachiq_policy::Autonomy {
                phase: state.current_phase.to_string(),
                approval_mode: state.approval_mode.to_string(),
                paused_actions: state.paused_actions.clone(),
            };
        }
        let decision = match &rules.policies {
            Ok(policies) => kamachiq_policy::decide(&input, &rules.tenant, policies.as_ref()),
            Err(e) => broken_policy(&input, &rules.tenant, rules.stamp.policy_version, e),
        };
        let need = rules.governance.as_ref().and_then(|governed| {
            let subject = Subject {
                action: input.action,
                risk: decision.risk,
                verdict: decision.verdict,
            };
            let settings = &governed.settings;
            match kamachiq_governance::needs_approval(
                &governed.state,
                &subject,
                settings.risk_threshold,
            ) {
                Requirement::Auto | Requirement::Denied { .. } => None,
                Requirement::Approval { cause, reason } => Some(Need {
                    auto: cause.auto_approvable()
                        && kamachiq_governance::approval::auto_approves(
                            decision.risk,
                            settings.auto_approve_low_risk,
                        ),
                    cause,
                    reason,
                }),
            }
        });
        let approval_ttl = rules
            .governance
            .as_ref()
            .map_or(kamachiq_governance::approval::DEFAULT_TTL, |g| {
                g.settings.approval_ttl
            });
        let record = DecisionRecord {
            id: format!("dc-{}", ulid::Ulid::generate().to_string().to_lowercase()),
            tenant: tenant.clone(),
            run: input
                .run
                .as_ref()
                .and_then(|r| kamachiq_domain::RunId::parse(r.id.as_str()).ok()),
            deliverable: input
                .deliverable
                .as_ref()
                .and_then(|d| kamachiq_domain::DeliverableId::parse(d.id.as_str()).ok()),
            decision: decision.clone(),
            at: input.at,
            input,
        };
        Ok(Judged {
            decision,
            record,
            need,
            approval_ttl,
        })
    }

    /// The tenant's governance in force, when it is governed (cached like its settings).
    pub async fn governance(&self, tenant: &TenantId) -> Result<Option<Arc<Governed>>, Error> {
        Ok(self.rules(tenant).await?.governance.clone())
    }

    /// Forgets what is cached of `tenant`: its settings or policies changed in this process.
    pub fn forget(&self, tenant: &TenantId) {
        self.lock().remove(tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<Rules>>> {
        lock(&self.rules)
    }

    /// The tenant's rules, from the cache while fresh; reloaded when their versions moved.
    async fn rules(&self, tenant: &TenantId) -> Result<Arc<Rules>, Error> {
        let cached = self.lock().get(tenant).cloned();
        if let Some(rules) = &cached
            && rules.checked.elapsed() < REFRESH
        {
            return Ok(rules.clone());
        }
        let stamp = self.store.policy_stamp(tenant).await?;
        let rules = match cached {
            Some(rules) if rules.stamp == stamp => Arc::new(Rules {
                tenant: rules.tenant.clone(),
                policies: rules.policies.clone(),
                governance: rules.governance.clone(),
                stamp,
                checked: Instant::now(),
            }),
            _ => Arc::new(self.load(tenant, stamp).await?),
        };
        self.lock().insert(tenant.clone(), rules.clone());
        Ok(rules)
    }

    async fn load(&self, tenant: &TenantId, stamp: PolicyStamp) -> Result<Rules, Error> {
        let settings = self.store.tenant_or_default(tenant).await?;
        let policies = match self.store.policy(tenant).await? {
            None => Ok(None),
            Some(stored) => PolicySet::compile(stored.version, stored.modules)
                .map(Some)
                .map_err(|e| {
                    tracing::error!(tenant = %tenant, version = stored.version, error = %e,
                        "the tenant's policy set does not compile; its actions are denied");
                    e.to_string()
                }),
        };
        let governance = if stamp.governance_version > 0 {
            self.store.governance(tenant).await?.map(Arc::new)
        } else {
            None
        };
        Ok(Rules {
            tenant: settings,
            policies,
            governance,
            stamp,
            checked: Instant::now(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The decision when the tenant's policy set cannot be evaluated at all: deny, saying why.
fn broken_policy(input: &Input, tenant: &Tenant, version: u32, error: &str) -> Decision {
    let mut decision = kamachiq_policy::decide(input, tenant, None);
    decision.verdict = Verdict::Deny;
    decision.score = 0.0;
    decision.risk = kamachiq_policy::Risk::Critical;
    decision.policy_version = Some(version);
    decision.reasons.push(kamachiq_policy::Reason {
        code: "policy_error".to_owned(),
        message: format!("the tenant's policy set v{version} does not compile: {error}"),
        rule: "builtin.policy_set".to_owned(),
    });
    decision
}
