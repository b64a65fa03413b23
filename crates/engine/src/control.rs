//! Switches an operator flips: the emergency stop (for every run, everywhere the store
//! reaches) and pausing one run. The store holds them; drivers look at them on every watch tick
//! and hand their work back, so within about a tick no new action starts and every step
//! process has been told to stop.

use kamachiq_domain::RunId;
use kamachiq_store::StopState;

use crate::Error;
use crate::drive::{STOP_FILE, stop_file};
use crate::engine::Engine;

impl Engine {
    /// Turns the emergency stop on. Returns the stop in force and whether this call turned it
    /// on (false: it already was).
    pub async fn stop_all(&self, by: &str, reason: &str) -> Result<(StopState, bool), Error> {
        let now = self.inner.clock.now();
        let stopped = self.inner.store.stop_all(by, reason, now).await?;
        self.inner.gate.forget_stop();
        if stopped.1 {
            tracing::warn!(by, reason, "emergency stop: every run hands its work back");
        }
        Ok(stopped)
    }

    /// Lifts the emergency stop (and removes the STOP file, which would turn it on again).
    /// Returns the stop that was lifted, if one was on. Runs are driven again by a server's
    /// scheduler, or by `kamachiq resume RUN`.
    pub async fn resume_all(&self, by: &str) -> Result<Option<StopState>, Error> {
        if stop_file(self).await {
            let file = self.inner.options.home.join(STOP_FILE);
            tokio::fs::remove_file(&file).await.map_err(|e| {
                Error::Io(format!(
                    "cannot remove the STOP file {}: {e}",
                    file.display()
                ))
            })?;
        }
        let lifted = self
            .inner
            .store
            .resume_all(by, self.inner.clock.now())
            .await?;
        self.inner.gate.forget_stop();
        self.inner.submitted.notify_one();
        Ok(lifted)
    }

    /// The emergency stop, if it is on (from the STOP file too, which this records).
    pub async fn emergency_stop(&self) -> Result<Option<StopState>, Error> {
        if let Some(stop) = self.inner.gate.emergency_stop().await? {
            return Ok(Some(stop));
        }
        if stop_file(self).await {
            let file = self.inner.options.home.join(STOP_FILE);
            let (stop, _) = self
                .stop_all(
                    &format!("file:{}", file.display()),
                    "the STOP file was created",
                )
                .await?;
            return Ok(Some(stop));
        }
        Ok(None)
    }

    /// Pauses a run: its driver hands its work back and nothing runs until it is resumed.
    /// Returns false when it was paused already, or has finished.
    pub async fn pause(&self, run: &RunId, by: &str) -> Result<bool, Error> {
        Ok(self
            .inner
            .store
            .set_paused(run, true, by, self.inner.clock.now())
            .await?)
    }

    /// Lifts a pause. Returns false when the run was not paused.
    pub async fn unpause(&self, run: &RunId, by: &str) -> Result<bool, Error> {
        let lifted = self
            .inner
            .store
            .set_paused(run, false, by, self.inner.clock.now())
            .await?;
        if lifted {
            self.inner.submitted.notify_one();
        }
        Ok(lifted)
    }
}
