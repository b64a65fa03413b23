//! Writing a batch's events with their sequence numbers.

use std::collections::HashMap;

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{DeliverableId, Event, RunId, TenantId, Timestamp};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Any, Transaction};

use super::{Events, json_array};
use crate::decode::{int, text};
use crate::{Error, Store};

impl Store {
    pub(super) async fn insert_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        mut events: Events,
    ) -> Result<Vec<Event>, Error> {
        #[derive(Serialize)]
        struct Row<'r> {
            run: &'r str,
            tenant: &'r str,
            kind: &'r str,
            deliverable: Option<&'r str>,
            data: &'r Value,
            at: i64,
        }
        if events.0.is_empty() {
            return Ok(Vec::new());
        }
        events.0.sort_by_key(|(change, _, _)| *change);
        // Every event carries its run's tenant; a batch concerns a few runs, looked up once.
        #[derive(Serialize)]
        struct RunRef<'r> {
            id: &'r str,
        }
        let mut runs: Vec<RunRef<'_>> = events
            .0
            .iter()
            .map(|(_, run, _)| RunRef { id: run.as_str() })
            .collect();
        runs.sort_by_key(|t| t.id);
        runs.dedup_by_key(|t| t.id);
        let mut tenants: HashMap<String, TenantId> = HashMap::new();
        for row in sqlx::query(self.sql.select_tenants.sql())
            .bind(json_array(&runs)?)
            .fetch_all(&mut **tx)
            .await?
        {
            tenants.insert(text(&row, "id")?, TenantId::parse(text(&row, "tenant")?)?);
        }
        let mut rows: Vec<Row<'_>> = Vec::with_capacity(events.0.len());
        for (_, run, e) in &events.0 {
            let tenant = tenants.get(run.as_str()).ok_or_else(|| {
                Error::Corrupt(format!("an event names run {run}, which does not exist"))
            })?;
            rows.push(Row {
                run: run.as_str(),
                tenant: tenant.as_str(),
                kind: e.kind.as_str(),
                deliverable: e.deliverable.as_ref().map(DeliverableId::as_str),
                data: &e.data,
                at,
            });
        }
        let inserted = sqlx::query(self.sql.insert_events.sql())
            .bind(json_array(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        // Sequence numbers are assigned in insertion order (the rows are inserted ordered by
        // their position in the batch, one writer at a time), so the n-th smallest belongs to
        // the n-th event: the events are built from what is in hand, not read back.
        let mut seqs: Vec<i64> = inserted
            .iter()
            .map(|row| int(row, "seq"))
            .collect::<Result<_, _>>()?;
        if seqs.len() != events.0.len() {
            return Err(Error::Corrupt(format!(
                "{} events written, {} expected",
                seqs.len(),
                events.0.len()
            )));
        }
        seqs.sort_unstable();
        let at = Timestamp::from_millis(at);
        Ok(events
            .0
            .into_iter()
            .zip(seqs)
            .filter_map(|((_, run_id, e), seq)| {
                let tenant = tenants.get(run_id.as_str())?.clone();
                Some(Event {
                    seq,
                    at,
                    run_id,
                    tenant,
                    kind: e.kind,
                    deliverable: e.deliverable,
                    data: e.data,
                })
            })
            .collect())
    }

    /// Appends events outside a batch (the run's first event is written with the run).
    pub(crate) async fn insert_run_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: Timestamp,
        run: &RunId,
        new: Vec<NewEvent>,
    ) -> Result<Vec<Event>, Error> {
        let events = Events(new.into_iter().map(|e| (0, run.clone(), e)).collect());
        self.insert_events(tx, at.as_millis(), events).await
    }
}
