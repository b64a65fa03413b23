-- The usage ledger: tokens and cost each agent step reported, per model, written as the agent
-- streams (and at the step's end), so budgets are checked and spend is reported from it.

CREATE TABLE usage (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deliverable TEXT NOT NULL,
    step TEXT NOT NULL,
    step_attempt BIGINT NOT NULL,
    agent TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    cost_micro_usd BIGINT NOT NULL,
    day TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX usage_by_run ON usage (run_id, deliverable);
CREATE INDEX usage_by_tenant_day ON usage (tenant, day);
