//! Who drives a run: the run's lease in the store, and this engine's own record of the runs
//! it is driving.

use kamachiq_domain::RunId;
use kamachiq_domain::run::Run;
use kamachiq_store::{Change, Purpose};

use crate::Error;
use crate::engine::Engine;

/// Marks a run as driven (or being cancelled) by this engine for as long as it lives. Only one
/// holder per run: a second driver of the same run in this process is refused.
pub(crate) struct Driving {
    engine: Engine,
    run: RunId,
}

impl Driving {
    /// `None` when this engine is driving the run already.
    pub(crate) fn enter(engine: &Engine, run: &RunId) -> Option<Self> {
        let fresh = engine
            .inner
            .driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.clone());
        fresh.then(|| Self {
            engine: engine.clone(),
            run: run.clone(),
        })
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.engine
            .inner
            .driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.run);
    }
}

/// Takes the run's lease, from a previous driver if that one is gone.
pub(crate) async fn acquire(
    engine: &Engine,
    run: &Run,
    driven_before: bool,
    purpose: Purpose,
) -> Result<(), Error> {
    let inner = &engine.inner;
    let me = inner.owner.to_string();
    let now = inner.clock.now();
    let replacing = match &run.driver {
        Some(lease) if lease.owner != me && engine.driver_alive(&run.id, lease) => {
            return Err(Error::RunBusy {
                run: run.id.clone(),
                owner: lease.owner.clone(),
                expires_at: lease.expires_at,
            });
        }
        Some(lease) => Some(lease.owner.as_str()),
        None => None,
    };
    if !inner
        .store
        .acquire_driver(
            &run.id,
            &me,
            now.plus(inner.options.lease_ttl),
            now,
            replacing,
            purpose,
        )
        .await?
    {
        let control = inner.store.run_control(&run.id).await?;
        let lease = control.driver.unwrap_or(kamachiq_domain::run::Lease {
            owner: "another driver".into(),
            expires_at: now,
        });
        return Err(Error::RunBusy {
            run: run.id.clone(),
            owner: lease.owner,
            expires_at: lease.expires_at,
        });
    }
    // A run leased to this engine at submission is starting, not resuming.
    if driven_before || run.driver.as_ref().is_some_and(|l| l.owner != me) {
        inner
            .committer
            .commit(Change::Resumed {
                run: run.id.clone(),
                driver: me,
            })
            .await?;
    }
    Ok(())
}
