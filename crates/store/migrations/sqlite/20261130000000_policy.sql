-- Tenants and their settings, versioned policy sets, every policy decision with the input it
-- was made on, the requeue of deliverables held back by policy, and the audit trail.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A tenant's Rego policy set; each upload is a new version, the highest is in force.
CREATE TABLE policies (
    tenant TEXT NOT NULL,
    version INTEGER NOT NULL,
    modules TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, version)
);

CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    run_id TEXT,
    deliverable TEXT,
    action TEXT NOT NULL,
    verdict TEXT NOT NULL,
    policy_version INTEGER,
    decision TEXT NOT NULL,
    input TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX decisions_by_tenant ON decisions (tenant, at);

CREATE TABLE requeue (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    action TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reasons TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT,
    resolved_by TEXT,
    justification TEXT
);
CREATE INDEX requeue_by_tenant ON requeue (tenant, resolved_at, created_at);
CREATE INDEX requeue_due ON requeue (resolved_at, next_retry_at);
-- A deliverable is in the requeue at most once at a time.
CREATE UNIQUE INDEX requeue_open_once ON requeue (run_id, deliverable) WHERE resolved_at IS NULL;

-- The audit trail: append-only and hash-chained (each row's hash covers the previous one's),
-- so an edit or a deletion shows in `kamachiq audit verify`.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

-- The requeue entry whose override lets a deliverable run although policy would hold it back.
ALTER TABLE deliverables ADD COLUMN policy_override TEXT;

-- The requeue's retry loop and blocked work: which runs wait only on review.
CREATE INDEX deliverables_blocked ON deliverables (state) WHERE state = 'blocked';
