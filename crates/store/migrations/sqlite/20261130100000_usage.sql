-- The usage ledger: tokens and cost each agent step reported, per model, written as the agent
-- streams (and at the step's end), so budgets are checked and spend is reported from it.

CREATE TABLE usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    step TEXT NOT NULL,
    step_attempt INTEGER NOT NULL,
    agent TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    day TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX usage_by_run ON usage (run_id, deliverable);
CREATE INDEX usage_by_tenant_day ON usage (tenant, day);
