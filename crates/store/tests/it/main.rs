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
);
