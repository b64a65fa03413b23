//! Claims, step starts and ends, and releases: the transitions of a deliverable while it runs.

use std::collections::HashMap;

use kamachiq_domain::EventKind;
use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::StepState;
use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::{Batch, Fenced, Key, Start, Target, json_array, key_of, lease_key};
use crate::change::{Applied, Change, ClaimKind, LeaseKey, StepEnd, StepRef, Then};
use crate::decode::{int, text};
use crate::{Error, Store};

impl Store {
    pub(super) async fn apply_claims<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct ClaimRow<'r> {
            run: &'r str,
            id: &'r str,
            owner: &'r str,
            until: i64,
            at: i64,
            takeover: i64,
            index: Option<u32>,
            step: Option<&'r str>,
        }
        let changes = batch.changes;
        let mut wanted: HashMap<(&str, &str), usize> = HashMap::new();
        let mut rows = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            if let Change::Claim {
                run,
                deliverable,
                owner,
                lease_until,
                kind,
                start,
            } = change
            {
                wanted.insert((run.as_str(), deliverable.as_str()), i);
                rows.push(ClaimRow {
                    run: run.as_str(),
                    id: deliverable.as_str(),
                    owner,
                    until: lease_until.as_millis(),
                    at: batch.at,
                    takeover: i64::from(*kind == ClaimKind::Takeover),
                    index: start.as_ref().map(|s| s.index),
                    step: start.as_ref().map(|s| s.name.as_str()),
                });
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let claimed = sqlx::query(self.sql.claim.sql())
            .bind(json_array(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut taken = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let (run_id, id) = key_of(row)?;
            let Some(&i) = wanted.get(&(run_id.as_str(), id.as_str())) else {
                continue;
            };
            let Change::Claim {
                run,
                deliverable,
                kind,
                start,
                ..
            } = &changes[i]
            else {
                continue;
            };
            let attempt = u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX);
            let next_step = u32::try_from(int(row, "next_step")?).unwrap_or(0);
            batch.results[i] = Ok(Applied::Claimed {
                attempt,
                next_step,
                step_attempt: None,
            });
            batch.events.push(
                i,
                run,
                NewEvent::deliverable(
                    EventKind::DeliverableStarted,
                    deliverable,
                    json!({"attempt": attempt, "next_step": next_step,
                           "takeover": *kind == ClaimKind::Takeover}),
                ),
            );
            if let Some(step) = start.as_ref().filter(|s| s.index == next_step) {
                batch.starts.push(Start {
                    change: i,
                    lease: LeaseKey {
                        run: run.clone(),
                        deliverable: deliverable.clone(),
                        attempt,
                    },
                    step,
                });
            }
            if *kind == ClaimKind::Takeover {
                taken.push(Target {
                    run: run.as_str(),
                    id: deliverable.as_str(),
                });
            }
        }
        if !taken.is_empty() {
            // Steps that a vanished driver left running were interrupted, not failed. (A
            // pending deliverable has no running step: only takeovers can.)
            self.close_running_steps(tx, StepState::Interrupted, batch.at, &taken)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn apply_step_ends<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Finish<'r> {
            run: &'r str,
            id: &'r str,
            index: u32,
            step_attempt: u32,
            state: &'r str,
            exit_code: Option<i32>,
            reason: Option<&'r str>,
            detail: Option<&'r str>,
            output: &'r str,
            bytes: u64,
            tokens: u64,
            cost: i64,
            at: i64,
        }
        let changes = batch.changes;
        let ends: Vec<(usize, &StepEnd)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::StepFinished(end) => Some((i, end.as_ref())),
                _ => None,
            })
            .collect();
        if ends.is_empty() {
            return Ok(());
        }
        let fence_rows: Vec<Fenced<'_>> = ends
            .iter()
            .map(|(_, end)| Fenced {
                advance: Some(i64::from(end.advance)),
                next: match &end.then {
                    Then::Start(step) => Some(step.name.as_str()),
                    _ => None,
                },
                complete: Some(i64::from(end.then == Then::Succeed)),
                index: Some(end.index),
                at: Some(batch.at),
                ..Fenced::new(&end.lease)
            })
            .collect();
        let accepted = self
            .fence(tx, &self.sql.fence_step_finish, &fence_rows)
            .await?;
        let mut updates = Vec::new();
        for (i, end) in ends {
            if !accepted.contains(&lease_key(&end.lease)) {
                continue;
            }
            batch.results[i] = Ok(Applied::Done);
            updates.push(Finish {
                run: end.lease.run.as_str(),
                id: end.lease.deliverable.as_str(),
                index: end.index,
                step_attempt: end.step_attempt,
                state: end.state.as_str(),
                exit_code: end.exit_code,
                reason: end.reason.as_ref().map(|r| r.code.as_str()),
                detail: end.reason.as_ref().map(|r| r.detail.as_str()),
                output: &end.output,
                bytes: end.output_bytes,
                tokens: end.tokens,
                cost: end.cost_micro_usd,
                at: batch.at,
            });
            batch.events.push(
                i,
                &end.lease.run,
                NewEvent::deliverable(
                    EventKind::StepFinished,
                    &end.lease.deliverable,
                    json!({
                        "step": end.step, "index": end.index, "attempt": end.step_attempt,
                        "state": end.state, "exit_code": end.exit_code,
                        "duration_ms": u64::try_from(end.duration.as_millis()).unwrap_or(u64::MAX),
                        "output_bytes": end.output_bytes, "output_tail": output_tail(&end.output),
                        "reason": end.reason, "tokens": end.tokens,
                        "cost_micro_usd": end.cost_micro_usd,
                    }),
                ),
            );
            match &end.then {
                Then::Stay => {}
                Then::Start(step) => batch.starts.push(Start {
                    change: i,
                    lease: end.lease.clone(),
                    step,
                }),
                // The deliverable was completed by the fence itself.
                Then::Succeed => {
                    batch.results[i] = Ok(Applied::Succeeded);
                    batch.events.push(
                        i,
                        &end.lease.run,
                        NewEvent::deliverable(
                            EventKind::DeliverableSucceeded,
                            &end.lease.deliverable,
                            json!({}),
                        ),
                    );
                    batch.completed.push(Target {
                        run: end.lease.run.as_str(),
                        id: end.lease.deliverable.as_str(),
                    });
                }
            }
        }
        if !updates.is_empty() {
            sqlx::query(self.sql.finish_step_attempts.sql())
                .bind(json_array(&updates)?)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Explicit step starts, and the starts that come with claims and step ends.
    pub(super) async fn apply_step_starts<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Insert<'r> {
            run: &'r str,
            id: &'r str,
            index: u32,
            step: &'r str,
            attempt: u32,
            at: i64,
        }
        let changes = batch.changes;
        let explicit: Vec<(usize, &LeaseKey, &StepRef)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::StepStarted { lease, step } => Some((i, lease, step)),
                _ => None,
            })
            .collect();
        if !explicit.is_empty() {
            let fence_rows: Vec<Fenced<'_>> = explicit
                .iter()
                .map(|(_, lease, step)| Fenced {
                    step: Some(step.name.as_str()),
                    ..Fenced::new(lease)
                })
                .collect();
            let accepted = self
                .fence(tx, &self.sql.fence_step_start, &fence_rows)
                .await?;
            for (i, lease, step) in explicit {
                if accepted.contains(&lease_key(lease)) {
                    batch.starts.push(Start {
                        change: i,
                        lease: lease.clone(),
                        step,
                    });
                }
            }
        }
        if batch.starts.is_empty() {
            return Ok(());
        }
        let inserts: Vec<Insert<'_>> = batch
            .starts
            .iter()
            .map(|s| Insert {
                run: s.lease.run.as_str(),
                id: s.lease.deliverable.as_str(),
                index: s.step.index,
                step: s.step.name.as_str(),
                attempt: s.lease.attempt,
                at: batch.at,
            })
            .collect();
        let inserted = sqlx::query(self.sql.insert_step_attempts.sql())
            .bind(json_array(&inserts)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut attempts: HashMap<Key, u32> = HashMap::new();
        for row in &inserted {
            let key = (text(row, "run_id")?, text(row, "deliverable")?);
            attempts.insert(key, u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX));
        }
        for start in std::mem::take(&mut batch.starts) {
            let Some(&step_attempt) = attempts.get(&lease_key(&start.lease)) else {
                continue;
            };
            batch.results[start.change] = match &batch.results[start.change] {
                Ok(Applied::Claimed {
                    attempt, next_step, ..
                }) => Ok(Applied::Claimed {
                    attempt: *attempt,
                    next_step: *next_step,
                    step_attempt: Some(step_attempt),
                }),
                _ => Ok(Applied::StepStarted { step_attempt }),
            };
            batch.events.push(
                start.change,
                &start.lease.run,
                NewEvent::deliverable(
                    EventKind::StepStarted,
                    &start.lease.deliverable,
                    json!({"step": start.step.name, "index": start.step.index, "attempt": step_attempt}),
                ),
            );
        }
        Ok(())
    }

    pub(super) async fn apply_releases<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let releases: Vec<(usize, &LeaseKey)> = batch
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Released { lease } => Some((i, lease)),
                _ => None,
            })
            .collect();
        if releases.is_empty() {
            return Ok(());
        }
        let rows: Vec<Fenced<'_>> = releases.iter().map(|(_, l)| Fenced::new(l)).collect();
        let accepted = self.fence(tx, &self.sql.release, &rows).await?;
        let mut interrupted = Vec::new();
        for (i, lease) in releases {
            if accepted.contains(&lease_key(lease)) {
                batch.results[i] = Ok(Applied::Done);
                interrupted.push(Target {
                    run: lease.run.as_str(),
                    id: lease.deliverable.as_str(),
                });
                batch.events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::DeliverableReleased,
                        &lease.deliverable,
                        json!({}),
                    ),
                );
            }
        }
        if !interrupted.is_empty() {
            self.close_running_steps(tx, StepState::Interrupted, batch.at, &interrupted)
                .await?;
        }
        Ok(())
    }
}

/// The last lines of a step's output, for event summaries: at most 5 lines and 500 bytes.
fn output_tail(output: &str) -> String {
    let trimmed = output.trim_end();
    let start = trimmed
        .rmatch_indices('\n')
        .nth(4)
        .map_or(0, |(i, _)| i + 1);
    let tail = &trimmed[start..];
    if tail.len() <= 500 {
        return tail.to_owned();
    }
    let mut cut = tail.len() - 500;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    tail[cut..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tail_keeps_the_last_five_lines() {
        let out = (1..=8).map(|i| format!("line {i}\n")).collect::<String>();
        assert_eq!(output_tail(&out), "line 4\nline 5\nline 6\nline 7\nline 8");
        assert_eq!(output_tail("one line"), "one line");
        assert_eq!(output_tail(""), "");
    }

    #[test]
    fn output_tail_is_bounded_and_stays_on_char_boundaries() {
        let long = "é".repeat(400);
        let tail = output_tail(&long);
        assert!(tail.len() <= 500);
        assert!(tail.chars().all(|c| c == 'é'));
    }
}
