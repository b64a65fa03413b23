//! Every SQL statement of the store, written once in the dialect both SQLite and PostgreSQL
//! accept. `json_rows($N)` stands for "the rows of the JSON array bound to `$N`" and is
//! rewritten per backend by [`crate::dialect::Backend::rewrite`].
//!
//! Writes are set-based: one statement handles every change of a kind in a batch, whatever the
//! batch's size, so a group commit of hundreds of transitions costs a handful of statements.
//! Every write to a running deliverable is fenced by its attempt number: a driver that lost its
//! lease can no longer change anything. JSON parameters are always arrays of objects, read with
//! `value ->> 'field'`, which both backends evaluate alike.

use crate::dialect::{Backend, Stmt};

macro_rules! statements {
    ($($name:ident = $sql:expr;)*) => {
        /// The store's statements, rewritten for one backend.
        #[derive(Clone, Debug)]
        pub(crate) struct Sql {
            $(pub $name: Stmt,)*
        }

        impl Sql {
            pub(crate) fn new(backend: Backend) -> Self {
                Self { $($name: Stmt::new(backend, $sql),)* }
            }
        }
    };
}

statements! {
    insert_run = "INSERT INTO runs (id, tenant, region, title, repo, branch, state, plan, concurrency, \
        cancel_requested, driver, driver_expires_at, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, 0, $10, $11, $9, $9)";

    insert_deliverables = "INSERT INTO deliverables (run_id, id, position, state, waiting_on) \
        SELECT $1, value ->> 'id', CAST(value ->> 'position' AS BIGINT), 'pending', \
        CAST(value ->> 'waiting_on' AS BIGINT) FROM json_rows($2)";

    insert_edges = "INSERT INTO edges (run_id, dependency, dependent) \
        SELECT $1, value ->> 'dependency', value ->> 'dependent' FROM json_rows($2)";

    select_tenants = "SELECT id, tenant FROM runs WHERE id IN (SELECT value ->> 'id' FROM json_rows($1))";

    insert_events = "INSERT INTO events (run_id, tenant, kind, deliverable, data, at) \
        SELECT value ->> 'run', value ->> 'tenant', value ->> 'kind', value ->> 'deliverable', \
        CAST(value -> 'data' AS TEXT), CAST(value ->> 'at' AS BIGINT) \
        FROM json_rows($1) ORDER BY key \
        RETURNING seq";

    claim = "UPDATE deliverables SET state = 'running', attempt = attempt + 1, \
        lease_owner = c.c_owner, lease_expires_at = c.c_until, \
        started_at = COALESCE(started_at, c.c_at), \
        current_step = CASE WHEN next_step = c.c_index THEN c.c_step END, \
        reason = NULL, reason_detail = NULL \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, value ->> 'owner' AS c_owner, \
              CAST(value ->> 'until' AS BIGINT) AS c_until, CAST(value ->> 'at' AS BIGINT) AS c_at, \
              CAST(value ->> 'takeover' AS BIGINT) AS c_takeover, \
              CAST(value ->> 'index' AS BIGINT) AS c_index, value ->> 'step' AS c_step FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND ((deliverables.state = 'pending' AND deliverables.waiting_on = 0) \
             OR (deliverables.state = 'running' AND c.c_takeover = 1)) \
        RETURNING run_id, id, attempt, next_step";

    close_running_steps = "UPDATE step_attempts SET state = $1, finished_at = $2 \
        WHERE state = 'running' AND (run_id, deliverable) IN \
        (SELECT value ->> 'run', value ->> 'id' FROM json_rows($3))";

    fence_step_start = "UPDATE deliverables SET current_step = c.c_step \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'attempt' AS BIGINT) AS c_attempt, value ->> 'step' AS c_step \
              FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND deliverables.attempt = c.c_attempt AND deliverables.state = 'running' \
        RETURNING run_id, id";

    insert_step_attempts = "INSERT INTO step_attempts (run_id, deliverable, step_index, step, attempt, \
        deliverable_attempt, state, started_at) \
        SELECT value ->> 'run', value ->> 'id', CAST(value ->> 'index' AS BIGINT), value ->> 'step', \
        COALESCE((SELECT MAX(s.attempt) FROM step_attempts s WHERE s.run_id = value ->> 'run' \
            AND s.deliverable = value ->> 'id' AND s.step_index = CAST(value ->> 'index' AS BIGINT)), 0) + 1, \
        CAST(value ->> 'attempt' AS BIGINT), 'running', CAST(value ->> 'at' AS BIGINT) \
        FROM json_rows($1) \
        RETURNING run_id, deliverable, attempt";

    fence_step_finish = "UPDATE deliverables SET current_step = c.c_next, next_step = c.c_index + c.c_advance, \
        state = CASE WHEN c.c_complete = 1 THEN 'succeeded' ELSE state END, \
        finished_at = CASE WHEN c.c_complete = 1 THEN c.c_at ELSE finished_at END, \
        lease_owner = CASE WHEN c.c_complete = 1 THEN NULL ELSE lease_owner END, \
        lease_expires_at = CASE WHEN c.c_complete = 1 THEN NULL ELSE lease_expires_at END \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'attempt' AS BIGINT) AS c_attempt, \
              CAST(value ->> 'advance' AS BIGINT) AS c_advance, value ->> 'next' AS c_next, \
              CAST(value ->> 'complete' AS BIGINT) AS c_complete, CAST(value ->> 'at' AS BIGINT) AS c_at, \
              CAST(value ->> 'index' AS BIGINT) AS c_index FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND deliverables.attempt = c.c_attempt AND deliverables.state = 'running' \
        AND deliverables.next_step = c.c_index \
        RETURNING run_id, id";

    finish_step_attempts = "UPDATE step_attempts SET state = c.c_state, exit_code = c.c_exit, \
        reason = c.c_reason, reason_detail = c.c_detail, output = c.c_output, \
        output_bytes = c.c_bytes, finished_at = c.c_at, tokens = c.c_tokens, cost_micro_usd = c.c_cost \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'index' AS BIGINT) AS c_index, CAST(value ->> 'step_attempt' AS BIGINT) AS c_step_attempt, \
              value ->> 'state' AS c_state, CAST(value ->> 'exit_code' AS BIGINT) AS c_exit, \
              value ->> 'reason' AS c_reason, value ->> 'detail' AS c_detail, value ->> 'output' AS c_output, \
              CAST(value ->> 'bytes' AS BIGINT) AS c_bytes, CAST(value ->> 'at' AS BIGINT) AS c_at, \
              CAST(value ->> 'tokens' AS BIGINT) AS c_tokens, CAST(value ->> 'cost' AS BIGINT) AS c_cost \
              FROM json_rows($1)) AS c \
        WHERE step_attempts.run_id = c.c_run AND step_attempts.deliverable = c.c_id \
        AND step_attempts.step_index = c.c_index AND step_attempts.attempt = c.c_step_attempt \
        AND step_attempts.state = 'running'";

    succeed = "UPDATE deliverables SET state = 'succeeded', finished_at = c.c_at, merge_commit = c.c_merge, \
        lease_owner = NULL, lease_expires_at = NULL, current_step = NULL \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'attempt' AS BIGINT) AS c_attempt, value ->> 'merge' AS c_merge, \
              CAST(value ->> 'at' AS BIGINT) AS c_at FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND deliverables.attempt = c.c_attempt AND deliverables.state = 'running' \
        RETURNING run_id, id";

    release_dependents = "UPDATE deliverables SET waiting_on = waiting_on - n.c_n \
        FROM (SELECT e.run_id AS c_run, e.dependent AS c_id, COUNT(*) AS c_n FROM edges e \
              JOIN (SELECT value ->> 'run' AS s_run, value ->> 'id' AS s_id FROM json_rows($1)) AS s \
              ON e.run_id = s.s_run AND e.dependency = s.s_id GROUP BY e.run_id, e.dependent) AS n \
        WHERE deliverables.run_id = n.c_run AND deliverables.id = n.c_id \
        RETURNING run_id, id, state, waiting_on";

    insert_rollback_points = "INSERT INTO rollback_points (id, run_id, deliverable, repo, branch, \
        before_commit, merge_commit, created_at) \
        SELECT value ->> 'id', value ->> 'run', value ->> 'deliverable', value ->> 'repo', value ->> 'branch', \
        value ->> 'before', value ->> 'merge', CAST(value ->> 'at' AS BIGINT) FROM json_rows($1)";

    end_running = "UPDATE deliverables SET state = c.c_state, reason = c.c_reason, reason_detail = c.c_detail, \
        finished_at = c.c_at, lease_owner = NULL, lease_expires_at = NULL, current_step = NULL \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'attempt' AS BIGINT) AS c_attempt, value ->> 'state' AS c_state, \
              value ->> 'reason' AS c_reason, value ->> 'detail' AS c_detail, \
              CAST(value ->> 'at' AS BIGINT) AS c_at FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND deliverables.attempt = c.c_attempt AND deliverables.state = 'running' \
        RETURNING run_id, id";

    skip_dependents = "WITH RECURSIVE down(run_id, id) AS ( \
            SELECT run_id, dependent FROM edges WHERE run_id = $1 AND dependency = $2 \
            UNION \
            SELECT e.run_id, e.dependent FROM edges e JOIN down d ON e.run_id = d.run_id AND e.dependency = d.id) \
        UPDATE deliverables SET state = 'skipped', reason = 'dependency_failed', reason_detail = $3, \
        finished_at = $4 \
        WHERE run_id = $1 AND state IN ('pending', 'blocked') AND id IN (SELECT id FROM down) \
        RETURNING id";

    release = "UPDATE deliverables SET lease_owner = NULL, lease_expires_at = NULL, current_step = NULL \
        FROM (SELECT value ->> 'run' AS c_run, value ->> 'id' AS c_id, \
              CAST(value ->> 'attempt' AS BIGINT) AS c_attempt FROM json_rows($1)) AS c \
        WHERE deliverables.run_id = c.c_run AND deliverables.id = c.c_id \
        AND deliverables.attempt = c.c_attempt AND deliverables.state = 'running' \
        RETURNING run_id, id";

    cancel_waiting = "UPDATE deliverables SET state = 'cancelled', reason = 'cancelled', reason_detail = $2, \
        finished_at = $3 WHERE run_id = $1 AND state IN ('pending', 'blocked') RETURNING id";

    close_requeue_of_run = "UPDATE requeue SET resolved_at = $2, updated_at = $2, resolution = 'cancelled', \
        next_retry_at = NULL WHERE run_id = $1 AND resolved_at IS NULL";

    withdraw_approvals_of_run = "UPDATE approvals SET status = 'withdrawn', decided_at = $2 \
        WHERE run_id = $1 AND status IN ('pending', 'escalated')";

    cancel_orphans = "UPDATE deliverables SET state = 'cancelled', reason = 'cancelled', reason_detail = $2, \
        finished_at = $3, lease_owner = NULL, lease_expires_at = NULL, current_step = NULL \
        WHERE run_id = $1 AND state = 'running' RETURNING id";

    cancel_orphan_steps = "UPDATE step_attempts SET state = 'cancelled', finished_at = $2 \
        WHERE run_id = $1 AND state = 'running'";

    // Every write to a run moves `updated_at` forward, even within one millisecond: readers
    // keep finished runs by it (see the server's run cache).
    request_cancel = "UPDATE runs SET cancel_requested = 1, \
        updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at + 1 END \
        WHERE id = $1 AND state = 'running' AND cancel_requested = 0 RETURNING id";

    finish_run = "UPDATE runs SET state = $2, finished_at = $3, \
        updated_at = CASE WHEN $3 > updated_at THEN $3 ELSE updated_at + 1 END, driver = NULL, \
        driver_expires_at = NULL WHERE id = $1 AND state = 'running' RETURNING id, created_at";

    reopen_run = "UPDATE runs SET state = 'running', finished_at = NULL, \
        updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at + 1 END, \
        cancel_requested = CASE WHEN state = 'cancelled' THEN 0 ELSE cancel_requested END \
        WHERE id = $1 AND driver = $3 RETURNING id";

    reopen_deliverables = "UPDATE deliverables SET state = 'pending', reason = NULL, reason_detail = NULL, \
        finished_at = NULL WHERE run_id = $1 AND state IN (SELECT value ->> 'state' FROM json_rows($2)) \
        RETURNING id";

    recount_waiting = "UPDATE deliverables SET waiting_on = (SELECT COUNT(*) FROM edges e \
            JOIN deliverables dep ON dep.run_id = e.run_id AND dep.id = e.dependency \
            WHERE e.run_id = deliverables.run_id AND e.dependent = deliverables.id AND dep.state <> 'succeeded') \
        WHERE run_id = $1 AND state = 'pending'";

    acquire_driver = "UPDATE runs SET driver = $2, driver_expires_at = $3, \
        updated_at = CASE WHEN $4 > updated_at THEN $4 ELSE updated_at + 1 END \
        WHERE id = $1 AND (state = 'running' OR $6 = 1) AND (driver IS NULL OR driver = $5) RETURNING id";

    renew_driver = "UPDATE runs SET driver_expires_at = $3, updated_at = updated_at + 1 \
        WHERE id = $1 AND driver = $2 RETURNING id";

    renew_leases = "UPDATE deliverables SET lease_expires_at = $3 \
        WHERE run_id = $1 AND lease_owner = $2 AND state = 'running'";

    release_driver = "UPDATE runs SET driver = NULL, driver_expires_at = NULL, updated_at = updated_at + 1 \
        WHERE id = $1 AND driver = $2";

    select_run = "SELECT id, tenant, region, title, repo, branch, state, plan, concurrency, cancel_requested, \
        driver, driver_expires_at, created_at, updated_at, finished_at FROM runs WHERE id = $1";

    select_run_control = "SELECT state, cancel_requested, driver, driver_expires_at, paused, \
        (SELECT COUNT(*) FROM controls WHERE name = 'emergency_stop') AS stopped FROM runs WHERE id = $1";

    select_run_ids_by_prefix = "SELECT id FROM runs WHERE id LIKE $1 ORDER BY id LIMIT 2";

    select_latest_run = "SELECT id FROM runs ORDER BY created_at DESC, id DESC LIMIT 1";

    select_runs = "SELECT id, tenant, title, state, created_at, finished_at FROM runs \
        WHERE ($1 IS NULL OR tenant = $1) \
        AND ($3 IS NULL OR (created_at, id) < \
            (SELECT created_at, id FROM runs WHERE id = $3 AND ($1 IS NULL OR tenant = $1))) \
        ORDER BY created_at DESC, id DESC LIMIT $2";

    // A run whose unfinished work all waits on review (blocked, or pending behind something
    // blocked) needs no driver until the requeue lets something through; one that asked to be
    // cancelled, or has nothing left unfinished (to be settled), does.
    select_runs_awaiting_driver = "SELECT id FROM runs \
        WHERE state = 'running' AND paused = 0 AND (driver IS NULL OR driver_expires_at < $1) \
        AND (cancel_requested = 1 \
            OR EXISTS (SELECT 1 FROM deliverables d WHERE d.run_id = runs.id \
                AND (d.state = 'running' OR (d.state = 'pending' AND d.waiting_on = 0))) \
            OR NOT EXISTS (SELECT 1 FROM deliverables d WHERE d.run_id = runs.id AND d.state = 'blocked')) \
        ORDER BY id LIMIT $2";

    insert_token = "INSERT INTO tokens (id, tenant, name, roles, hash, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";

    select_live_token_by_hash = "SELECT id, tenant, name, roles, created_at, revoked_at FROM tokens \
        WHERE hash = $1 AND revoked_at IS NULL";

    select_tokens = "SELECT id, tenant, name, roles, created_at, revoked_at FROM tokens \
        WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_at, id";

    revoke_token = "UPDATE tokens SET revoked_at = $3 \
        WHERE id = $1 AND ($2 IS NULL OR tenant = $2) AND revoked_at IS NULL \
        RETURNING id, tenant, name, roles, created_at, revoked_at";

    select_run_stamp = "SELECT tenant, state, updated_at FROM runs WHERE id = $1";

    select_latest_event_seq = "SELECT COALESCE(MAX(seq), 0) AS seq FROM events";

    count_live_tokens = "SELECT COUNT(*) AS n FROM tokens WHERE revoked_at IS NULL";

    summary_runs = "SELECT state, COUNT(*) AS n, \
        CAST(COALESCE(SUM(finished_at - created_at), 0) AS BIGINT) AS ms FROM runs \
        WHERE tenant = $1 GROUP BY state";

    summary_deliverables = "SELECT d.state, COUNT(*) AS n FROM deliverables d \
        JOIN runs r ON r.id = d.run_id WHERE r.tenant = $1 GROUP BY d.state";

    summary_usage = "SELECT CAST(COALESCE(SUM(s.tokens), 0) AS BIGINT) AS tokens, \
        CAST(COALESCE(SUM(s.cost_micro_usd), 0) AS BIGINT) AS cost FROM step_attempts s \
        JOIN runs r ON r.id = s.run_id WHERE r.tenant = $1";

    summary_handoffs_avoided = "SELECT COUNT(*) AS n FROM deliverables d \
        JOIN runs r ON r.id = d.run_id WHERE r.tenant = $1 AND d.state = 'succeeded' \
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.run_id = d.run_id \
            AND e.deliverable = d.id AND e.kind = 'deliverable_reopened')";

    select_queue_depth = "SELECT COUNT(*) AS n FROM deliverables d JOIN runs r ON r.id = d.run_id \
        WHERE r.state = 'running' AND d.state = 'pending' AND d.waiting_on = 0";

    select_deliverable_totals = "SELECT d.state, COUNT(*) AS n FROM deliverables d \
        JOIN runs r ON r.id = d.run_id WHERE r.state = 'running' GROUP BY d.state";

    select_counts = "SELECT run_id, state, COUNT(*) AS n FROM deliverables \
        WHERE run_id IN (SELECT value ->> 'id' FROM json_rows($1)) GROUP BY run_id, state";

    select_deliverables = "SELECT run_id, id, position, state, waiting_on, attempt, next_step, current_step, \
        lease_owner, lease_expires_at, reason, reason_detail, merge_commit, started_at, finished_at, \
        policy_override, approved_actions FROM deliverables WHERE run_id = $1 ORDER BY position";

    select_ready_among = "SELECT id, next_step, policy_override, approved_actions FROM deliverables \
        WHERE run_id = $1 AND state = 'pending' AND waiting_on = 0 \
        AND id IN (SELECT value ->> 'id' FROM json_rows($2))";

    select_step_attempts = "SELECT deliverable, step_index, step, attempt, state, exit_code, reason, \
        reason_detail, output_bytes, started_at, finished_at FROM step_attempts \
        WHERE run_id = $1 AND ($2 IS NULL OR deliverable = $2) \
        ORDER BY deliverable, step_index, attempt";

    select_step_output = "SELECT output FROM step_attempts \
        WHERE run_id = $1 AND deliverable = $2 AND step_index = $3 AND attempt = $4";

    select_events = "SELECT seq, run_id, tenant, kind, deliverable, data, at FROM events \
        WHERE seq > $1 AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR tenant = $3) \
        ORDER BY seq LIMIT $4";

    select_last_event_seq = "SELECT COALESCE(MAX(seq), 0) AS seq FROM events WHERE run_id = $1";

    select_rollback_points = "SELECT id, run_id, deliverable, repo, branch, before_commit, merge_commit, \
        created_at FROM rollback_points WHERE run_id = $1 ORDER BY created_at, id";

    select_last_audit_hash = "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1";

    insert_audit = "INSERT INTO audit (at, tenant, actor, action, subject, detail, prev_hash, hash) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    select_audit = "SELECT seq, at, tenant, actor, action, subject, detail, prev_hash, hash FROM audit \
        WHERE seq > $1 AND ($2 IS NULL OR tenant = $2) ORDER BY seq LIMIT $3";

    select_tenant = "SELECT id, settings, version, created_at, updated_at FROM tenants WHERE id = $1";

    select_tenants_all = "SELECT id, settings, version, created_at, updated_at FROM tenants ORDER BY id";

    insert_tenant = "INSERT INTO tenants (id, settings, version, created_at, updated_at) \
        VALUES ($1, $2, 1, $3, $3) ON CONFLICT (id) DO NOTHING RETURNING id";

    update_tenant = "UPDATE tenants SET settings = $2, version = $3, updated_at = $4 WHERE id = $1";

    select_latest_policy = "SELECT tenant, version, modules, digest, created_by, created_at FROM policies \
        WHERE tenant = $1 ORDER BY version DESC LIMIT 1";

    select_policy_version = "SELECT tenant, version, modules, digest, created_by, created_at FROM policies \
        WHERE tenant = $1 AND version = $2";

    select_policies = "SELECT tenant, version, modules, digest, created_by, created_at FROM policies \
        WHERE tenant = $1 ORDER BY version";

    insert_policy = "INSERT INTO policies (tenant, version, modules, digest, created_by, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6)";

    select_policy_stamp = "SELECT (SELECT version FROM tenants WHERE id = $1) AS tenant_version, \
        (SELECT MAX(version) FROM policies WHERE tenant = $1) AS policy_version, \
        (SELECT version FROM governance WHERE tenant = $1) AS governance_version";

    insert_decisions = "INSERT INTO decisions (id, tenant, run_id, deliverable, action, verdict, policy_version, \
        decision, input, at) \
        SELECT value ->> 'id', value ->> 'tenant', value ->> 'run', value ->> 'deliverable', value ->> 'action', \
        value ->> 'verdict', CAST(value ->> 'policy_version' AS BIGINT), CAST(value -> 'decision' AS TEXT), \
        CAST(value -> 'input' AS TEXT), CAST(value ->> 'at' AS BIGINT) FROM json_rows($1)";

    select_decisions = "SELECT id, tenant, run_id, deliverable, decision, input, at FROM decisions \
        WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR id > $3) \
        ORDER BY id LIMIT $4";

    select_decision = "SELECT id, tenant, run_id, deliverable, decision, input, at FROM decisions WHERE id = $1";

    block_pending = "UPDATE deliverables SET state = 'blocked', reason = $3, reason_detail = $4 \
        WHERE run_id = $1 AND id = $2 AND state = 'pending' AND waiting_on = 0 RETURNING id";

    block_running = "UPDATE deliverables SET state = 'blocked', reason = $3, reason_detail = $4, \
        lease_owner = NULL, lease_expires_at = NULL, current_step = NULL \
        WHERE run_id = $1 AND id = $2 AND state = 'running' AND attempt = $5 RETURNING id";

    insert_requeue = "INSERT INTO requeue (id, tenant, run_id, deliverable, action, decision_id, verdict, reasons, \
        attempts, next_retry_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10)";

    select_open_requeue = "SELECT run_id, deliverable FROM requeue WHERE id = $1 AND resolved_at IS NULL";

    unblock = "UPDATE deliverables SET state = 'pending', reason = NULL, reason_detail = NULL, \
        policy_override = COALESCE($3, policy_override) \
        WHERE run_id = $1 AND id = $2 AND state = 'blocked' RETURNING id";

    resolve_requeue = "UPDATE requeue SET resolved_at = $2, updated_at = $2, resolution = $3, resolved_by = $4, \
        justification = $5, next_retry_at = NULL, decision_id = COALESCE($6, decision_id) \
        WHERE id = $1 AND resolved_at IS NULL";

    retry_requeue = "UPDATE requeue SET attempts = $2, next_retry_at = $3, decision_id = $4, verdict = $5, \
        reasons = $6, updated_at = $7 WHERE id = $1 AND resolved_at IS NULL RETURNING run_id, deliverable";

    select_requeue = "SELECT id, tenant, run_id, deliverable, action, decision_id, verdict, reasons, attempts, \
        next_retry_at, created_at, updated_at, resolved_at, resolution, resolved_by, justification FROM requeue \
        WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR run_id = $2) AND ($3 = 0 OR resolved_at IS NULL) \
        ORDER BY created_at DESC, id DESC LIMIT $4";

    select_requeue_entry = "SELECT id, tenant, run_id, deliverable, action, decision_id, verdict, reasons, attempts, \
        next_retry_at, created_at, updated_at, resolved_at, resolution, resolved_by, justification FROM requeue \
        WHERE id = $1";

    select_requeue_due = "SELECT id, tenant, run_id, deliverable, action, decision_id, verdict, reasons, attempts, \
        next_retry_at, created_at, updated_at, resolved_at, resolution, resolved_by, justification FROM requeue \
        WHERE resolved_at IS NULL AND next_retry_at IS NOT NULL AND next_retry_at <= $1 \
        ORDER BY next_retry_at, id LIMIT $2";

    // A deliverable whose approval a person denied (or that expired unanswered) is not
    // retried on its own: only a person brings it back.
    requeue_due_now = "UPDATE requeue SET next_retry_at = $2 WHERE tenant = $1 AND resolved_at IS NULL \
        AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.requeue_id = requeue.id \
            AND a.status IN ('denied', 'expired'))";

    insert_usage = "INSERT INTO usage (tenant, run_id, deliverable, step, step_attempt, agent, model, \
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost_micro_usd, day, at) \
        SELECT value ->> 'tenant', value ->> 'run', value ->> 'deliverable', value ->> 'step', \
        CAST(value ->> 'step_attempt' AS BIGINT), value ->> 'agent', value ->> 'model', \
        CAST(value ->> 'input' AS BIGINT), CAST(value ->> 'output' AS BIGINT), \
        CAST(value ->> 'cache_read' AS BIGINT), CAST(value ->> 'cache_write' AS BIGINT), \
        CAST(value ->> 'tokens' AS BIGINT), CAST(value ->> 'cost' AS BIGINT), value ->> 'day', \
        CAST(value ->> 'at' AS BIGINT) FROM json_rows($1)";

    select_run_spend = "SELECT deliverable, CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
        CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost FROM usage WHERE run_id = $1 \
        GROUP BY deliverable ORDER BY deliverable";

    select_tenant_day_spend = "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
        CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost FROM usage WHERE tenant = $1 AND day = $2";

    select_control = "SELECT reason, by, at FROM controls WHERE name = $1";

    insert_control = "INSERT INTO controls (name, reason, by, at) VALUES ($1, $2, $3, $4) \
        ON CONFLICT (name) DO NOTHING RETURNING name";

    delete_control = "DELETE FROM controls WHERE name = $1 RETURNING reason, by, at";

    set_paused = "UPDATE runs SET paused = $2, \
        updated_at = CASE WHEN $3 > updated_at THEN $3 ELSE updated_at + 1 END \
        WHERE id = $1 AND state = 'running' AND paused <> $2 RETURNING tenant";

    select_stoppable_runs = "SELECT id FROM runs WHERE state = 'running' ORDER BY id";

    // Rollback points with their rollback, if any. `$5` is a merge-commit prefix (`abc%`),
    // `$6 = 1` keeps only points not rolled back yet.
    select_rollback_entries = "SELECT p.id, p.run_id, p.deliverable, p.repo, p.branch, p.before_commit, \
        p.merge_commit, p.created_at, r.revert_commit, r.actor AS rolled_back_by, r.at AS rolled_back_at \
        FROM rollback_points p LEFT JOIN rollbacks r ON r.point_id = p.id \
        WHERE ($1 IS NULL OR p.id = $1) AND ($2 IS NULL OR p.run_id = $2) AND ($3 IS NULL OR p.deliverable = $3) \
        AND ($4 IS NULL OR p.repo = $4) AND ($5 IS NULL OR p.merge_commit LIKE $5) \
        AND ($6 = 0 OR r.point_id IS NULL) \
        ORDER BY p.created_at DESC, p.id DESC LIMIT $7";

    insert_rollback = "INSERT INTO rollbacks (point_id, revert_commit, actor, at) VALUES ($1, $2, $3, $4) \
        ON CONFLICT (point_id) DO NOTHING RETURNING point_id";

    delete_rollbacks_before = "DELETE FROM rollbacks WHERE point_id IN \
        (SELECT id FROM rollback_points WHERE created_at < $1)";

    delete_rollback_points_before = "DELETE FROM rollback_points WHERE created_at < $1";

    insert_actions = "INSERT INTO actions (tenant, run_id, deliverable, action, outcome, duration_ms, tokens, \
        cost_micro_usd, critical, at) \
        SELECT value ->> 'tenant', value ->> 'run', value ->> 'deliverable', value ->> 'action', \
        value ->> 'outcome', CAST(value ->> 'duration_ms' AS BIGINT), CAST(value ->> 'tokens' AS BIGINT), \
        CAST(value ->> 'cost' AS BIGINT), CAST(value ->> 'critical' AS BIGINT), CAST(value ->> 'at' AS BIGINT) \
        FROM json_rows($1)";

    select_actions = "SELECT seq, run_id, deliverable, action, outcome, duration_ms, tokens, cost_micro_usd, \
        critical, at FROM actions WHERE tenant = $1 AND at > $2 AND at <= $3 ORDER BY at, seq LIMIT $4";

    select_actions_after = "SELECT seq, run_id, deliverable, action, outcome, duration_ms, tokens, \
        cost_micro_usd, critical, at FROM actions WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3";

    select_last_action_seq = "SELECT COALESCE(MAX(seq), 0) AS seq FROM actions WHERE tenant = $1";

    select_latest_action_seq = "SELECT COALESCE(MAX(seq), 0) AS seq FROM actions";

    select_action_totals_after = "SELECT tenant, action, outcome, COUNT(*) AS n, MAX(seq) AS last \
        FROM actions WHERE seq > $1 GROUP BY tenant, action, outcome ORDER BY tenant, action, outcome";

    select_action_counts = "SELECT outcome, COUNT(*) AS n, CAST(COALESCE(SUM(critical), 0) AS BIGINT) AS critical, \
        CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost \
        FROM actions WHERE tenant = $1 AND at > $2 AND at <= $3 GROUP BY outcome";

    select_governance = "SELECT tenant, state, settings, checklist, version, created_at, updated_at \
        FROM governance WHERE tenant = $1";

    select_governed = "SELECT tenant, state, settings, checklist, version, created_at, updated_at \
        FROM governance ORDER BY tenant";

    insert_governance = "INSERT INTO governance (tenant, state, settings, checklist, version, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (tenant) DO NOTHING RETURNING tenant";

    update_governance = "UPDATE governance SET state = $2, settings = $3, version = version + 1, updated_at = $4 \
        WHERE tenant = $1 AND version = $5 RETURNING version";

    update_checklist = "UPDATE governance SET checklist = $2, version = version + 1, updated_at = $3 \
        WHERE tenant = $1 AND version = $4 RETURNING version";

    bump_governance = "UPDATE governance SET version = version + 1, updated_at = $2 WHERE tenant = $1 \
        RETURNING version";

    select_rules = "SELECT rule FROM breaker_rules WHERE tenant = $1 ORDER BY position, name";

    // `WHERE true`: SQLite reads `ON CONFLICT` after a bare `SELECT ... FROM` as a join's.
    insert_rules = "INSERT INTO breaker_rules (tenant, name, rule, position) \
        SELECT $1, value ->> 'name', value ->> 'rule', \
        (SELECT COALESCE(MAX(position), 0) FROM breaker_rules WHERE tenant = $1) + CAST(value ->> 'position' AS BIGINT) \
        FROM json_rows($2) WHERE true ON CONFLICT (tenant, name) DO NOTHING RETURNING name";

    update_rule = "UPDATE breaker_rules SET rule = $3 WHERE tenant = $1 AND name = $2 RETURNING name";

    delete_rule = "DELETE FROM breaker_rules WHERE tenant = $1 AND name = $2 RETURNING name";

    insert_breaker_event = "INSERT INTO breaker_events (id, tenant, rule, severity, action, action_type, effect, \
        metrics, run_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

    select_breaker_events = "SELECT id, tenant, rule, severity, action, action_type, effect, metrics, run_id, at, \
        resolved_at, resolved_by, note FROM breaker_events \
        WHERE tenant = $1 AND ($2 = 0 OR resolved_at IS NULL) AND ($3 IS NULL OR at >= $3) \
        ORDER BY at DESC, id DESC LIMIT $4";

    select_breaker_event = "SELECT id, tenant, rule, severity, action, action_type, effect, metrics, run_id, at, \
        resolved_at, resolved_by, note FROM breaker_events WHERE id = $1";

    resolve_breaker_event = "UPDATE breaker_events SET resolved_at = $2, resolved_by = $3, note = $4 \
        WHERE id = $1 AND resolved_at IS NULL RETURNING id";

    select_breaker_event_totals = "SELECT severity, COUNT(*) AS n, \
        CAST(COALESCE(SUM(CASE WHEN resolved_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS open \
        FROM breaker_events GROUP BY severity ORDER BY severity";

    insert_approvals = "INSERT INTO approvals (id, requeue_id, tenant, run_id, deliverable, action, step, risk, \
        cause, evidence, requested_at, expires_at, status, decided_by, decided_at) \
        SELECT value ->> 'id', value ->> 'requeue', value ->> 'tenant', value ->> 'run', value ->> 'deliverable', \
        value ->> 'action', value ->> 'step', value ->> 'risk', value ->> 'cause', value ->> 'evidence', \
        CAST(value ->> 'requested_at' AS BIGINT), CAST(value ->> 'expires_at' AS BIGINT), value ->> 'status', \
        value ->> 'decided_by', CAST(value ->> 'decided_at' AS BIGINT) FROM json_rows($1)";

    select_approvals = "SELECT id, requeue_id, tenant, run_id, deliverable, action, step, risk, cause, evidence, \
        requested_at, expires_at, status, decided_by, decided_at, comment FROM approvals \
        WHERE tenant = $1 AND ($2 = 0 OR status IN ('pending', 'escalated')) \
        ORDER BY requested_at DESC, id DESC LIMIT $3";

    select_approval = "SELECT id, requeue_id, tenant, run_id, deliverable, action, step, risk, cause, evidence, \
        requested_at, expires_at, status, decided_by, decided_at, comment FROM approvals WHERE id = $1";

    select_open_approval_of_requeue = "SELECT id FROM approvals WHERE requeue_id = $1 \
        AND status IN ('pending', 'escalated')";

    // `$6 = 1`: an escalated request may be decided too (by a person); expiry only takes
    // pending ones, at their time.
    decide_approval = "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, comment = $5 \
        WHERE id = $1 AND (status = 'pending' OR (status = 'escalated' AND $6 = 1)) \
        AND ($6 = 1 OR expires_at <= $4) \
        RETURNING requeue_id, tenant, run_id, deliverable, action, requested_at";

    withdraw_approvals_of_requeue = "UPDATE approvals SET status = 'withdrawn', decided_at = $2 \
        WHERE requeue_id = $1 AND status IN ('pending', 'escalated') RETURNING id";

    select_expired_approvals = "SELECT id, requeue_id, tenant, run_id, deliverable, action, step, risk, cause, \
        evidence, requested_at, expires_at, status, decided_by, decided_at, comment FROM approvals \
        WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2";

    select_approval_decisions = "SELECT status, COUNT(*) AS n FROM approvals \
        WHERE tenant = $1 AND decided_at >= $2 AND status IN ('approved', 'denied') AND decided_by <> 'auto' \
        GROUP BY status";

    select_open_approval_counts = "SELECT tenant, COUNT(*) AS n FROM approvals \
        WHERE status IN ('pending', 'escalated') GROUP BY tenant";

    select_deliverable_approvals = "SELECT next_step, approved_actions FROM deliverables \
        WHERE run_id = $1 AND id = $2";

    unblock_approved = "UPDATE deliverables SET state = 'pending', reason = NULL, reason_detail = NULL, \
        approved_actions = $3 WHERE run_id = $1 AND id = $2 AND state = 'blocked' RETURNING id";

    hold_requeue = "UPDATE requeue SET next_retry_at = NULL, reasons = $2, updated_at = $3 \
        WHERE id = $1 AND resolved_at IS NULL";

    select_requeue_reasons = "SELECT reasons FROM requeue WHERE id = $1 AND resolved_at IS NULL";

    insert_attestation = "INSERT INTO attestations (tenant, item, by, evidence, at) VALUES ($1, $2, $3, $4, $5)";

    select_attestations = "SELECT item, by, evidence, at FROM attestations WHERE tenant = $1 AND at >= $2 \
        ORDER BY at, seq";

    insert_report = "INSERT INTO governance_reports (id, tenant, report, requested_by, at) VALUES ($1, $2, $3, $4, $5)";

    select_reports = "SELECT id, tenant, report, requested_by, at FROM governance_reports WHERE tenant = $1 \
        ORDER BY at DESC, id DESC LIMIT $2";

    select_report = "SELECT id, tenant, report, requested_by, at FROM governance_reports WHERE id = $1";

    insert_proposal = "INSERT INTO proposals (id, tenant, report_id, draft, approvals, status, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)";

    select_proposals = "SELECT id, tenant, report_id, draft, approvals, status, created_at, updated_at FROM proposals \
        WHERE tenant = $1 AND ($2 = 0 OR status = 'pending') ORDER BY created_at DESC, id DESC LIMIT $3";

    select_proposal = "SELECT id, tenant, report_id, draft, approvals, status, created_at, updated_at FROM proposals \
        WHERE id = $1";

    select_pending_drafts = "SELECT id, draft FROM proposals WHERE tenant = $1 AND status = 'pending' ORDER BY id";

    withdraw_proposal = "UPDATE proposals SET status = 'withdrawn', updated_at = $2 \
        WHERE id = $1 AND status = 'pending' RETURNING id";

    update_proposal = "UPDATE proposals SET approvals = $2, status = $3, updated_at = $4 \
        WHERE id = $1 AND status = 'pending' RETURNING id";

    upsert_observation = "INSERT INTO observations (name, at) VALUES ($1, $2) \
        ON CONFLICT (name) DO UPDATE SET at = excluded.at";

    select_observation = "SELECT at FROM observations WHERE name = $1";

    select_stop_drills = "SELECT (SELECT COUNT(*) FROM audit WHERE action = 'emergency_stop' AND at >= $1) AS stops, \
        (SELECT COUNT(*) FROM audit WHERE action = 'resume_all' AND at >= $1) AS resumes";
}

/// The ledger summed by `key` (a column expression of [`crate::usage`], never user text):
/// bound `$1` tenant, `$2` run, `$3` since, each null for all.
pub(crate) fn spend_by(backend: Backend, key: &str) -> String {
    backend.rewrite(&format!(
        "SELECT {key} AS key, CAST(SUM(tokens) AS BIGINT) AS tokens, \
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
         CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
         CAST(SUM(cost_micro_usd) AS BIGINT) AS cost, \
         COUNT(DISTINCT run_id || '/' || deliverable || '/' || step || '/' || CAST(step_attempt AS TEXT)) AS steps \
         FROM usage WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR run_id = $2) \
         AND ($3 IS NULL OR at >= $3) GROUP BY {key} ORDER BY cost DESC, tokens DESC, key"
    ))
}
