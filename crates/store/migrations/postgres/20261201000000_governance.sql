-- Autonomy governance: the outcome of every automated action, each governed tenant's phase and
-- settings, its circuit-breaker rules and their events, the approvals inbox, readiness
-- attestations, the weekly cycle's reports and the expansion proposals they draft.

-- One finished automated action (a step attempt, a merge, a rollback, an incident flagged by an
-- operator), written in the transaction of the change that ended it; for every tenant.
CREATE TABLE actions (
    seq BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    run_id TEXT,
    deliverable TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    cost_micro_usd BIGINT NOT NULL,
    critical BIGINT NOT NULL DEFAULT 0,
    at BIGINT NOT NULL
);
CREATE INDEX actions_by_tenant ON actions (tenant, at);
CREATE INDEX actions_by_tenant_seq ON actions (tenant, seq);

-- A governed tenant: a row exists once an admin enabled governance. `version` goes up with
-- every change of anything governance holds for the tenant (state, settings, rules, breaker
-- events), so caches reload on one cheap read.
CREATE TABLE governance (
    tenant TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    settings TEXT NOT NULL,
    checklist TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE breaker_rules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    rule TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE breaker_events (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    action TEXT NOT NULL,
    action_type TEXT,
    effect TEXT NOT NULL,
    metrics TEXT NOT NULL,
    run_id TEXT,
    at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    note TEXT
);
CREATE INDEX breaker_events_by_tenant ON breaker_events (tenant, at);
CREATE INDEX breaker_events_open ON breaker_events (tenant, resolved_at);

-- The approvals inbox: an action that waits for a person (its deliverable blocked in the
-- requeue), or one approved at once by a tenant's low-risk auto-approval.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    requeue_id TEXT,
    tenant TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    action TEXT NOT NULL,
    step TEXT,
    risk TEXT NOT NULL,
    cause TEXT,
    evidence TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    comment TEXT
);
CREATE INDEX approvals_by_tenant ON approvals (tenant, requested_at);
CREATE INDEX approvals_by_status ON approvals (status, expires_at);
CREATE INDEX approvals_by_requeue ON approvals (requeue_id);

CREATE TABLE attestations (
    seq BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    item TEXT NOT NULL,
    by TEXT NOT NULL,
    evidence TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX attestations_by_tenant ON attestations (tenant, at);

CREATE TABLE governance_reports (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    report TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX governance_reports_by_tenant ON governance_reports (tenant, at);

CREATE TABLE proposals (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    report_id TEXT NOT NULL,
    draft TEXT NOT NULL,
    approvals TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proposals_by_tenant ON proposals (tenant, status, created_at);

-- When something was last seen happening (a scrape of /metrics), for readiness facts.
CREATE TABLE observations (
    name TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

-- The actions a person approved for a blocked deliverable (JSON array of scopes such as
-- "merge" or "run_step:2"): each lets that action through, and nothing else.
ALTER TABLE deliverables ADD COLUMN approved_actions TEXT;
