//! The command line of autonomy governance: `governance`, `breaker`, `readiness` and
//! `approvals`. Each works on the local store (the tenant named with `--tenant`, the actor
//! `local:<login>`) or, with `--server`, through the API (the tenant and the person are the
//! token's).

use clap::{Args, Subcommand};

/// The tenant a local command acts on; with `--server`, the token's tenant is used.
#[derive(Debug, Args, Default, Clone)]
pub struct TenantArg {
    /// The tenant (required on the local store; with --server, the token's).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// Start governing a tenant (an admin's act): its phase (L3 by default, with that phase's
    /// whitelist), its approval mode, settings, kamachiq's default circuit-breaker rules and
    /// readiness checklist. Until then the tenant is decided by policy alone.
    Enable {
        #[command(flatten)]
        tenant: TenantArg,
        /// L3, L3+, L4, L4+ or L5.
        #[arg(long, default_value = "L3")]
        phase: String,
        /// manual (a person approves everything), supervised (what is off the whitelist or at
        /// or above the risk threshold waits), autonomous (only what policy asks waits).
        #[arg(long, default_value = "supervised")]
        mode: String,
        /// Approve low-risk requests raised only because the action is off the whitelist, at
        /// once, as `auto`.
        #[arg(long)]
        auto_approve_low_risk: bool,
        /// How long an approval request waits for a person (`24h`, `90m`).
        #[arg(long, value_name = "DURATION")]
        approval_ttl: Option<String>,
        /// What becomes of a request nobody answered: deny or escalate.
        #[arg(long, value_name = "ACTION")]
        on_expiry: Option<String>,
        /// In supervised mode, whitelisted actions at or above this risk wait (default high).
        #[arg(long, value_name = "RISK")]
        risk_threshold: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The tenant's governance: phase, since when, validation period, whitelist, paused action
    /// types, mode and settings (`GET /api/governance/state`).
    State {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Change the tenant's approval mode and settings (admin). Audited.
    Configure {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long, value_name = "BOOL")]
        auto_approve_low_risk: Option<bool>,
        #[arg(long, value_name = "DURATION")]
        approval_ttl: Option<String>,
        #[arg(long, value_name = "ACTION")]
        on_expiry: Option<String>,
        #[arg(long, value_name = "RISK")]
        risk_threshold: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Roll the tenant's phase back (admin or ops lead): the phase restarts from now with
    /// what the target allows (nothing at L3). Audited with the reason.
    Rollback {
        #[command(flatten)]
        tenant: TenantArg,
        /// The phase to go back to.
        #[arg(long = "to", value_name = "PHASE")]
        target: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Record a critical incident attributed to an action type; circuit breakers judge it at
    /// once ("Critical Incident" reverts to L3). Audited.
    Incident {
        #[command(flatten)]
        tenant: TenantArg,
        /// provision, run_step, merge or rollback.
        #[arg(long)]
        action: String,
        #[arg(long)]
        description: String,
        /// The run it happened in (an id, a unique prefix, or `latest`).
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the weekly governance cycle: metrics, readiness, breaker events, the
    /// recommendation, and a proposal when expanding is recommended. You may not approve
    /// the proposal it drafts.
    Cycle {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Governance reports, newest first; or one (`--id`), or the latest (`--latest`).
    Reports {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long, conflicts_with = "id")]
        latest: bool,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Expansion proposals, newest first: pending ones, or all with --all.
    Proposals {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a proposal as the token's identity, for a role it names that the token holds.
    /// Needs --server: an approval is an authenticated person's, never a name typed here.
    Approve {
        proposal: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reject a proposal as the token's identity (needs --server).
    Reject {
        proposal: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// The tenant's action metrics over a window ending now (`GET /api/metrics/latest`).
    Metrics {
        #[command(flatten)]
        tenant: TenantArg,
        /// `5m`, `1h`, `24h`, `7d`.
        #[arg(long, default_value = "1h")]
        window: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BreakerCommand {
    /// The tenant's circuit-breaker rules.
    Rules {
        #[command(flatten)]
        tenant: TenantArg,
        /// Only the enabled ones.
        #[arg(long)]
        enabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Add a rule (admin or ops lead). The condition is CEL over the window's numbers
    /// (`errorRate > 0.08 && total >= 20`); one that does not parse is refused.
    Add {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        name: String,
        #[arg(long)]
        condition: String,
        /// `5m`, `1h`.
        #[arg(long)]
        window: String,
        /// revert_to_l3, pause_command_type or alert_only.
        #[arg(long)]
        action: String,
        /// critical, high, medium or low.
        #[arg(long)]
        severity: String,
        /// The action type it watches (default: every type).
        #[arg(long)]
        action_type: Option<String>,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a rule (admin or ops lead); options left out keep their value.
    Update {
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        condition: Option<String>,
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        severity: Option<String>,
        /// An action type, or `all` to watch every type.
        #[arg(long)]
        action_type: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule (admin or ops lead).
    Delete {
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// The events the rules raised, newest first; --unresolved for the open ones.
    Events {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        unresolved: bool,
        #[arg(long)]
        json: bool,
    },
    /// Resolve an event once its cause is fixed; a paused action type resumes.
    Resolve {
        id: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReadinessCommand {
    /// The readiness score, by category, with the blockers.
    Score {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Every checklist item with its result and evidence.
    Current {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// The checklist: each item's category, weight, whether it is required, and its CEL
    /// condition (or "attested"). With --set FILE, replace it (an admin's act, audited) by the
    /// JSON that `checklist --json` prints, edited; checked whole first, so a bad item changes
    /// nothing.
    Checklist {
        #[command(flatten)]
        tenant: TenantArg,
        /// The new checklist, as JSON: {"items": [{"id", "category", "title", "weight",
        /// "required", "condition"?}]}.
        #[arg(long, value_name = "FILE")]
        set: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Attest an item kamachiq cannot measure, with evidence; it counts for the current
    /// phase. Locally the attester is `local:<login>`; with --server, the token.
    Attest {
        /// The item's id (`org.on_call`).
        item: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        evidence: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// What waits for a person (pending or escalated), newest first; --all for decided ones.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One request: the operation, its risk, the evidence (reasons, diff, steps), its deadline.
    View {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve requests: each deliverable runs the action it waited for (and only it).
    Approve {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a request: the deliverable stays in the requeue.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}
