//! The store contract: every test runs against SQLite and against PostgreSQL.
//!
//! PostgreSQL is found at `KAMACHIQ_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets a schema of its own. When no server
//! answers, the PostgreSQL tests fail and say so, unless `KAMACHIQ_SKIP_POSTGRES=1` asks for them
//! to be skipped: a green run never hides that half the contract went unchecked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod contract;
mod support;

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = crate::support::sqlite().await;
                    crate::contract::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(store) = crate::support::postgres().await {
                        crate::contract::$name(store).await;
                    }
                }
            )*
        }
    };
}

contract_tests!(
    create_run_stores_plan_deliverables_and_first_event,
    only_ready_deliverables_can_be_claimed,
    success_releases_dependents_exactly_when_all_dependencies_succeed,
    writes_from_a_lost_lease_are_rejected,
    failure_skips_every_transitive_dependent_and_nothing_else,
    step_attempts_are_numbered_and_keep_their_output,
    release_interrupts_the_running_step_and_takeover_resumes_it,
    cancel_requests_and_cancels_waiting_and_orphaned_work,
    run_finishes_once_and_events_are_ordered,
    driver_lease_is_exclusive_and_renewable,
    runs_resolve_by_prefix_and_list_newest_first,
    reopen_puts_failed_work_back_with_fresh_counters,
    large_batches_apply_every_change,
    merges_record_rollback_points,
    events_filter_by_tenant_and_run,
    a_claim_starts_the_expected_step_with_it,
    a_step_end_starts_the_next_step_or_completes_the_deliverable,
    a_failure_closes_a_step_that_never_ran,
    a_step_end_applied_twice_is_refused_the_second_time,
    tokens_are_found_by_hash_until_revoked,
    summary_counts_one_tenants_runs,
    load_counts_work_in_flight,
    runs_awaiting_a_driver_skip_live_leases,
    runs_submitted_together_are_stored_together,
    a_page_cursor_from_another_tenant_finds_nothing,
    tenants_are_created_updated_and_audited,
    policies_are_versioned_and_unchanged_sets_are_not_stored_twice,
    a_blocked_deliverable_waits_in_the_requeue_until_let_through,
    a_running_deliverable_is_blocked_only_at_its_attempt,
    retries_keep_the_entry_open_and_a_change_makes_it_due_at_once,
    cancelling_a_run_closes_its_requeue_entries,
    decisions_are_recorded_with_their_input_and_paged,
    the_audit_trail_chains_every_record,
    rollback_points_list_newest_first_and_filter,
    a_rollback_is_recorded_once_with_its_audit_record_and_event,
    cleanup_forgets_old_points_and_their_rollbacks_only,
    the_emergency_stop_and_pauses_are_seen_by_every_reader,
    usage_is_summed_by_run_deliverable_model_and_day,
    action_outcomes_are_recorded_with_their_change_and_read_by_window,
    governance_is_enabled_once_with_its_rules_and_audited,
    a_governance_change_is_compare_and_set,
    a_checklist_change_is_compare_and_set_and_audited,
    rules_are_added_replaced_and_deleted_each_moving_the_version,
    a_trip_changes_the_state_and_records_its_event_audit_and_run_event,
    approving_a_request_lets_exactly_its_action_through,
    a_denied_request_keeps_its_deliverable_blocked_and_unretried,
    requests_expire_at_their_time_denied_or_escalated,
    letting_a_deliverable_through_otherwise_withdraws_its_request,
    approvals_granted_at_once_are_recorded_and_only_people_are_counted,
    reports_and_proposals_are_kept_and_decided_once,
    a_phase_change_withdraws_the_proposals_it_left_stale,
    attestations_observations_and_stop_drills_are_read_back,
);

/// The audit trail refuses edits, and an edit made behind the store's back (its guard
/// removed first) is found by the chain. SQLite only: it needs the database file.
#[tokio::test]
async fn an_edited_audit_record_breaks_the_chain() {
    use sqlx::Executor;
    let (store, dir) = support::sqlite().await;
    for i in 0..3 {
        store
            .audit(
                kamachiq_domain::Timestamp::from_millis(i),
                &kamachiq_store::AuditEntry {
                    tenant: kamachiq_domain::TenantId::parse("tenant-a").unwrap(),
                    actor: "alice".into(),
                    action: "requeue_override".into(),
                    subject: format!("rq-{i}"),
                    detail: serde_json::json!({"justification": "ok"}),
                },
            )
            .await
            .unwrap();
    }
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&format!(
        "sqlite://{}",
        dir.path().join("kamachiq.db").display()
    ))
    .await
    .unwrap();
    let refused = raw
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    assert!(
        raw.execute("DELETE FROM audit WHERE seq = 3")
            .await
            .is_err()
    );
    raw.execute("DROP TRIGGER audit_no_update").await.unwrap();
    raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        .await
        .unwrap();
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.broken_at, Some(2));
}
