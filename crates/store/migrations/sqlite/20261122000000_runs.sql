-- Runs, their deliverables, the dependency edges between them, step attempts, rollback points
-- and the event log. Times are UTC milliseconds since the Unix epoch.

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    region TEXT NOT NULL,
    title TEXT,
    repo TEXT,
    branch TEXT,
    state TEXT NOT NULL,
    plan TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    driver TEXT,
    driver_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX runs_by_tenant ON runs (tenant, created_at);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE deliverables (
    run_id TEXT NOT NULL REFERENCES runs (id),
    id TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    waiting_on INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    next_step INTEGER NOT NULL DEFAULT 0,
    current_step TEXT,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    reason TEXT,
    reason_detail TEXT,
    merge_commit TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, id)
);
CREATE INDEX deliverables_by_state ON deliverables (run_id, state);

CREATE TABLE edges (
    run_id TEXT NOT NULL,
    dependency TEXT NOT NULL,
    dependent TEXT NOT NULL,
    PRIMARY KEY (run_id, dependency, dependent)
);

CREATE TABLE step_attempts (
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    deliverable_attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    reason_detail TEXT,
    output TEXT,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (run_id, deliverable, step_index, attempt)
);

CREATE TABLE rollback_points (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    before_commit TEXT NOT NULL,
    merge_commit TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX rollback_points_by_run ON rollback_points (run_id);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    deliverable TEXT,
    data TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);
CREATE INDEX events_by_tenant ON events (tenant, seq);
