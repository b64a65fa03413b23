-- API tokens (only a hash of each secret is kept), and what agent steps consume.

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
-- A live token's name is unique within its tenant; a revoked name can be reused.
CREATE UNIQUE INDEX tokens_live_name ON tokens (tenant, name) WHERE revoked_at IS NULL;

-- Tokens and cost an agent step reported; zero for plain commands.
ALTER TABLE step_attempts ADD COLUMN tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE step_attempts ADD COLUMN cost_micro_usd BIGINT NOT NULL DEFAULT 0;

-- The scheduler's question: which running runs have no live driver?
CREATE INDEX runs_awaiting_driver ON runs (state, driver_expires_at);

-- A tenant's summary reads only this index, never the runs themselves.
CREATE INDEX runs_summary ON runs (tenant, state, created_at, finished_at);
