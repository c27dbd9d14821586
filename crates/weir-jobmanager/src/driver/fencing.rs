//! The driver's side of `weir_checkpoint::lineage`: fencing an attempt before it lists
//! checkpoints, recording what it restores from before it deploys, and checking, before and
//! after a checkpoint's `_metadata` is written, that no later attempt exists.

use super::*;
use lifecycle::StartError;

/// Why a checkpoint must not complete.
pub(super) enum Stop {
    /// This job manager no longer leads, or another one started a later attempt: the
    /// attempt stops.
    Superseded(String),
    /// The check could not be made: this checkpoint is not committed now (the next one's
    /// commit covers it).
    Unknown(String),
}

impl Driver {
    /// Creates the fence of the next attempt number, past every fence there is. Another job
    /// manager's fence of the same number means it started that attempt: the next number is
    /// tried while this job manager leads.
    pub(super) async fn fence_next_attempt(&mut self) -> std::result::Result<u64, StartError> {
        let job_id = self.record.job_id.clone();
        for _ in 0..10 {
            if !self.term.is_valid() {
                return Err(StartError::Deposed);
            }
            let fences =
                self.store.fenced_attempts(&job_id).await.map_err(|e| {
                    StartError::Retry(format!("cannot read the attempt records: {e}"))
                })?;
            let attempt = lineage::next_attempt(fences, self.record.attempt);
            let fence = AttemptFence {
                attempt,
                epoch: self.term.epoch,
                holder: self.term.holder.clone(),
                created_at_ms: now_ms(),
            };
            match self.store.fence_attempt(&job_id, &fence).await {
                Ok(true) => return Ok(attempt),
                Ok(false) => {
                    warn!(
                        attempt,
                        "another job manager fenced this attempt first; trying the next"
                    )
                }
                Err(e) => {
                    return Err(StartError::Retry(format!(
                        "cannot fence attempt {attempt}: {e}"
                    )))
                }
            }
        }
        Err(StartError::Retry(
            "no attempt could be fenced: another job manager keeps starting them".into(),
        ))
    }

    /// Chooses what fenced attempt `attempt` restores from (listed after its fence) and
    /// records it: the folder and metadata to deploy with, and the checkpoint id if it is one
    /// of the job's own.
    pub(super) async fn record_restore_point(
        &mut self,
        attempt: u64,
        listing: &CheckpointListing,
    ) -> std::result::Result<(Option<(String, String)>, Option<CheckpointId>), StartError> {
        let job_id = self.record.job_id.clone();
        let restores = self
            .store
            .restores(&job_id)
            .await
            .map_err(|e| StartError::Retry(format!("cannot read the attempt records: {e}")))?;
        let completed: Vec<(CheckpointId, u64)> =
            listing.completed.iter().map(|c| (c.0, c.2)).collect();
        let opener = self.cfg.storage.clone();
        let external = |loc: String| {
            let opener = opener.clone();
            async move {
                let meta = read_metadata(&opener, &loc)
                    .await
                    .map_err(|e| StartError::Fatal(e.to_string()))?;
                Ok::<_, StartError>(Some((loc, meta)))
            }
        };
        let (restore, checkpoint) = match lineage::restore_point(&restores, &completed) {
            RestorePoint::Checkpoint(id) => {
                let found = listing.get(id).ok_or_else(|| {
                    StartError::Fatal(format!(
                        "cannot restore: checkpoint {id}, which the last attempt restored from, is gone from {}",
                        self.record.checkpoint_dir
                    ))
                })?;
                (Some(found), Some(id))
            }
            RestorePoint::External(loc) => (external(loc).await?, None),
            RestorePoint::Fresh if !self.record.restore_from.is_empty() => {
                (external(self.record.restore_from.clone()).await?, None)
            }
            RestorePoint::Fresh => (None, None),
        };
        let record = AttemptRestore {
            attempt,
            checkpoint,
            location: restore.as_ref().map(|r| r.0.clone()).unwrap_or_default(),
        };
        match self.store.record_restore(&job_id, &record).await {
            Ok(true) => Ok((restore, checkpoint)),
            Ok(false) => Err(StartError::Retry(format!(
                "attempt {attempt} was recorded by another job manager"
            ))),
            Err(e) => Err(StartError::Retry(format!(
                "cannot record attempt {attempt}: {e}"
            ))),
        }
    }

    /// Whether attempt `number` may complete a checkpoint: this job manager still leads and
    /// no later attempt is fenced.
    pub(super) async fn may_complete(&self, number: u64) -> std::result::Result<(), Stop> {
        if !self.term.is_valid() {
            return Err(Stop::Superseded(
                "this job manager no longer leads".to_string(),
            ));
        }
        let next = number + 1;
        match self.store.fence_exists(&self.record.job_id, next).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Stop::Superseded(format!(
                "attempt {next} was started by another job manager"
            ))),
            Err(e) => Err(Stop::Unknown(format!(
                "cannot check for a later attempt: {e}"
            ))),
        }
    }

    /// Gives checkpoint `id` up for `stop`; a superseded attempt stops after it.
    pub(super) fn stop_checkpoint(&mut self, id: CheckpointId, stop: Stop) {
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        let (Stop::Superseded(reason) | Stop::Unknown(reason)) = &stop;
        warn!(checkpoint = id, %reason, "checkpoint not completed; its sinks do not commit");
        a.give_up(id, reason);
        if let Stop::Superseded(reason) = stop {
            self.superseded = Some(format!("attempt {} stopped: {reason}", a.number));
        }
    }
}
