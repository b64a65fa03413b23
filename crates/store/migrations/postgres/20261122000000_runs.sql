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
    concurrency BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    driver TEXT,
    driver_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX runs_by_tenant ON runs (tenant, created_at);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE deliverables (
    run_id TEXT NOT NULL REFERENCES runs (id),
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    state TEXT NOT NULL,
    waiting_on BIGINT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    next_step BIGINT NOT NULL DEFAULT 0,
    current_step TEXT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    reason TEXT,
    reason_detail TEXT,
    merge_commit TEXT,
    started_at BIGINT,
    finished_at BIGINT,
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
    step_index BIGINT NOT NULL,
    step TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    deliverable_attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    exit_code BIGINT,
    reason TEXT,
    reason_detail TEXT,
    output TEXT,
    output_bytes BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
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
    created_at BIGINT NOT NULL
);
CREATE INDEX rollback_points_by_run ON rollback_points (run_id);

CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    deliverable TEXT,
    data TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);
CREATE INDEX events_by_tenant ON events (tenant, seq);
