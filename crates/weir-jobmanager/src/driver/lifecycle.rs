//! The driver's states: scheduling, running, restarting, and the terminal ones.

use super::*;

pub(super) enum StartError {
    /// Worth another attempt (no slots yet, a task manager refused the deployment).
    Retry(String),
    /// Pointless to retry (the checkpoint to restore is corrupt).
    Fatal(String),
    Canceled,
    /// This job manager no longer leads: stop driving, write nothing.
    Deposed,
}

impl Driver {
    pub(super) async fn run(mut self) {
        loop {
            match self.start_attempt().await {
                Ok(()) => {}
                Err(StartError::Canceled) => {
                    return self.terminate(JobState::Canceled, String::new()).await
                }
                Err(StartError::Fatal(msg)) => return self.terminate(JobState::Failed, msg).await,
                Err(StartError::Deposed) => {
                    info!("no longer the leader; stopped driving the job");
                    return;
                }
                Err(StartError::Retry(msg)) => {
                    if !self.restart_or_fail(msg).await {
                        return;
                    }
                    continue;
                }
            }
            match self.run_attempt().await {
                Outcome::Finished => {
                    return self.terminate(JobState::Finished, String::new()).await
                }
                Outcome::Canceled => {
                    return self.terminate(JobState::Canceled, String::new()).await
                }
                Outcome::Failed(msg) => {
                    if !self.restart_or_fail(msg).await {
                        return;
                    }
                }
                Outcome::Superseded(msg) => {
                    self.stop_failed_attempt(&msg).await;
                    if !self.term.is_valid() {
                        info!("no longer the leader; stopped driving the job");
                        return;
                    }
                    // Still the leader: the other job manager's term is over, or ends within
                    // its renew deadline. Start a new attempt (not a restart: nothing failed).
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Outcome::FailedForGood(msg) => {
                    self.stop_failed_attempt(&msg).await;
                    return self
                        .terminate(
                            JobState::Failed,
                            format!("{msg} (not restarted: the same input would fail again)"),
                        )
                        .await;
                }
            }
        }
    }

    fn publish(&self) {
        let mut v = lock(&self.view);
        v.record = self.record.clone();
        if let Some(a) = &self.attempt {
            v.checkpoints = a.coordinator.history().cloned().collect();
        }
    }

    async fn persist(&self) {
        if !self.term.is_valid() {
            warn!(
                state = self.record.state.as_str(),
                "not the leader any more; the job record is left as it is"
            );
            return;
        }
        if let Err(e) = self.store.save(&self.record).await {
            error!(error = %e, "cannot persist the job record");
        }
        self.publish();
    }

    async fn terminate(&mut self, state: JobState, failure: String) {
        if let Err(e) = self.cancel_tasks_up_to(self.record.attempt).await {
            warn!(error = %e, "the job's tasks did not all confirm their cancellation");
        }
        self.cluster.release(&JobId(self.record.job_id.clone()));
        if let Some(a) = self.attempt.as_mut() {
            for (_, (reply, _)) in a.savepoints.drain() {
                let _ = reply.send(Err(format!("job ended ({})", state.as_str())));
            }
        }
        self.record.state = state;
        self.record.failure = failure;
        info!(state = state.as_str(), failure = %self.record.failure, "job ended");
        self.persist().await;
    }

    /// Tells every task manager to cancel this job's tasks of `attempt` and older ones, and
    /// waits until they have stopped, the blocking work they started included: the next
    /// attempt's recovery must not race an old sink's commit. A task manager that cannot be
    /// reached counts as stopped (it is gone, or it cancels its tasks itself once it stops
    /// hearing from the job manager). Err names the task managers that did not confirm.
    async fn cancel_tasks_up_to(&self, attempt: u64) -> std::result::Result<(), String> {
        let wait = self.cfg.cancel_timeout;
        let mut unconfirmed = Vec::new();
        for (tm, mut client) in self.cluster.clients() {
            let req = pb::CancelTasksRequest {
                job_id: self.record.job_id.clone(),
                attempt,
                wait_ms: wait.as_millis() as u64,
                leader_epoch: self.term.epoch,
            };
            match tokio::time::timeout(wait + Duration::from_secs(5), client.cancel_job(req)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => {
                    unconfirmed.push(format!("{tm}: {}", s.message()))
                }
                Ok(Err(_)) => {} // unreachable: gone
                Err(_) => unconfirmed.push(format!("{tm}: no answer within {wait:?}")),
            }
        }
        if unconfirmed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "tasks of attempt {attempt} still running: {}",
                unconfirmed.join("; ")
            ))
        }
    }

    /// Waits for slots, persists the next attempt number, and deploys from the newest
    /// completed checkpoint (or the savepoint the job was submitted with).
    async fn start_attempt(&mut self) -> std::result::Result<(), StartError> {
        let job = JobId(self.record.job_id.clone());
        let tasks = self.plan.tasks();
        let needed = tasks.len() as u32;
        let deadline = tokio::time::Instant::now() + self.cfg.slot_wait;
        let slots = loop {
            if let Some(s) = self.cluster.allocate(&job, needed) {
                break s;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StartError::Retry(format!(
                    "not enough slots: the job needs {needed}, the cluster has {} in all",
                    self.cluster.total_slots()
                )));
            }
            let notified = self.cluster.changed.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                ev = self.rx.recv() => match ev {
                    Some(JobEvent::Cancel(reply)) => { let _ = reply.send(()); return Err(StartError::Canceled); }
                    Some(JobEvent::Savepoint { reply, .. }) => { let _ = reply.send(Err("the job is not running".into())); }
                    _ => {}
                }
            }
        };
        // Fence the attempt before listing the checkpoints (weir_checkpoint::lineage): a
        // checkpoint another job manager completes after this cannot be committed.
        let attempt = self.fence_next_attempt().await?;
        // A store that cannot be read now (an outage) is worth another attempt; a checkpoint
        // that cannot be parsed is not.
        let listing = list_checkpoints(&self.cfg.storage, &self.record.checkpoint_dir)
            .await
            .map_err(|e| match e {
                JmError::Storage(e) => {
                    StartError::Retry(format!("cannot list the checkpoints to restore: {e}"))
                }
                e => StartError::Fatal(format!("cannot restore: {e}")),
            })?;
        self.next_checkpoint_id = self.next_checkpoint_id.max(listing.max_id + 1);
        for url in &listing.abandoned {
            if let Ok(s) = self.cfg.storage.open(url) {
                let _ = s.delete_prefix("").await;
            }
        }
        let (restore, checkpoint) = self.record_restore_point(attempt, &listing).await?;
        self.record.attempt = attempt;
        self.record.state = JobState::Running;
        self.persist().await;
        self.cancel_tasks_up_to(attempt - 1)
            .await
            .map_err(StartError::Retry)?;

        let mut placement = HashMap::new();
        let mut by_tm: BTreeMap<String, Vec<TaskKey>> = BTreeMap::new();
        for (task, (tm, address)) in tasks.iter().zip(slots) {
            placement.insert(*task, address);
            by_tm.entry(tm).or_default().push(*task);
        }
        let pb_placement: Vec<pb::TaskLocation> = placement
            .iter()
            .map(|(t, a)| pb::TaskLocation {
                vertex: t.vertex,
                subtask: t.subtask,
                address: a.clone(),
            })
            .collect();
        let (restore_dir, restore_meta) = restore.clone().unwrap_or_default();
        // Aligned sources hold their groups from now, each as "no watermark yet" on its task
        // manager, until that task manager's heartbeat reports it: the task managers deployed
        // first must not read ahead of the ones not deployed yet.
        {
            let now = std::time::Instant::now();
            let mut table = lock(&self.alignment);
            for (tm, tm_tasks) in &by_tm {
                for t in tm_tasks {
                    let Some(op) = self
                        .plan
                        .vertex(t.vertex)
                        .and_then(|v| v.operators.first())
                        .and_then(|i| self.spec.operators.get(*i))
                    else {
                        continue;
                    };
                    if let Some(a) = op.watermark.as_ref().and_then(|w| w.alignment.as_ref()) {
                        if op.kind.is_source() {
                            let group = (self.record.job_id.clone(), attempt, a.group.clone());
                            table.expect(tm, group, t.vertex, t.subtask, now);
                        }
                    }
                }
            }
        }
        for (tm, tm_tasks) in &by_tm {
            let Some(mut client) = self.cluster.client(tm) else {
                return Err(StartError::Retry(format!(
                    "task manager {tm} vanished during deployment"
                )));
            };
            let req = pb::DeployTasksRequest {
                job_id: self.record.job_id.clone(),
                attempt,
                job_json: self.record.job_json.clone(),
                tasks: tm_tasks
                    .iter()
                    .map(|t| pb::DeployedTask {
                        vertex: t.vertex,
                        subtask: t.subtask,
                    })
                    .collect(),
                placement: pb_placement.clone(),
                restore_checkpoint: restore_dir.clone(),
                restore_metadata_json: restore_meta.clone(),
                checkpoint_dir: self.record.checkpoint_dir.clone(),
                leader_epoch: self.term.epoch,
            };
            match tokio::time::timeout(Duration::from_secs(10), client.deploy_tasks(req)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(StartError::Retry(format!(
                        "deploying to {tm}: {}",
                        e.message()
                    )))
                }
                Err(_) => return Err(StartError::Retry(format!("deploying to {tm}: timed out"))),
            }
        }
        let parallelism: BTreeMap<String, u32> = self
            .spec
            .operators
            .iter()
            .map(|o| (o.id.clone(), o.parallelism))
            .collect();
        let mut coordinator = CheckpointCoordinator::new(
            tasks.iter().copied(),
            parallelism,
            self.next_checkpoint_id,
            self.spec.checkpoint.timeout_ms,
            self.spec.checkpoint.retained as usize,
        );
        // Retention counts the checkpoints already there, so older ones get deleted too.
        // Those newer than the restore point are orphans (weir_checkpoint::lineage): a
        // deposed job manager completed them after a later attempt was fenced, and nothing
        // of theirs was committed. They must not push the restore point out of retention.
        let mut discard = Vec::new();
        for (id, url, by) in listing.completed {
            if checkpoint.is_some_and(|r| id <= r) {
                discard.extend(coordinator.adopt_completed(id, url));
            } else {
                warn!(checkpoint = id, attempt = by, "checkpoint {id} of attempt {by} was completed by a deposed job manager after a later attempt was fenced; it was never committed; deleting it");
                discard.push(url);
            }
        }
        delete_folders(&self.cfg.storage, discard);
        let sources = tasks
            .iter()
            .copied()
            .filter(|t| self.plan.vertex(t.vertex).is_some_and(|v| v.is_source))
            .collect();
        info!(attempt, tasks = tasks.len(), task_managers = by_tm.len(), restore = %restore_dir, "deployed");
        self.attempt = Some(Attempt {
            number: attempt,
            tms: by_tm.keys().cloned().collect(),
            tasks: tasks.into_iter().collect(),
            sources,
            coordinator,
            exhausted: HashSet::new(),
            final_checkpoint: None,
            finished: HashSet::new(),
            savepoints: HashMap::new(),
        });
        self.publish();
        Ok(())
    }

    async fn run_attempt(&mut self) -> Outcome {
        let interval_ms = self.spec.checkpoint.interval_ms;
        let mut checkpoint_tick = tokio::time::interval(Duration::from_millis(interval_ms.max(50)));
        checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoint_tick.tick().await;
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                ev = self.rx.recv() => {
                    let Some(ev) = ev else { return Outcome::Canceled };
                    if let Some(outcome) = self.handle(ev).await {
                        return match outcome {
                            Outcome::Failed(msg) => self.first_cause(msg).await,
                            other => other,
                        };
                    }
                }
                _ = checkpoint_tick.tick(), if interval_ms > 0 => {
                    if self.all_sources_exhausted() {
                        self.trigger_final().await;
                    } else {
                        self.trigger(None, false).await;
                    }
                }
                _ = housekeeping.tick() => {
                    self.expire_checkpoints();
                    self.publish();
                }
            }
            if let Some(msg) = self.superseded.take() {
                return Outcome::Superseded(msg);
            }
        }
    }

    fn expire_checkpoints(&mut self) {
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        for id in a.coordinator.expired(now_ms()) {
            warn!(checkpoint = id, "checkpoint timed out; aborted");
            a.give_up(id, "timed out");
        }
    }

    /// Starts a checkpoint (or savepoint into `target`).
    fn all_sources_exhausted(&self) -> bool {
        self.attempt
            .as_ref()
            .is_some_and(|a| a.sources.iter().all(|s| a.exhausted.contains(s)))
    }

    /// Triggers the checkpoint that ends the sources, unless one is under way. If a periodic
    /// checkpoint is in progress the trigger is refused and the next tick tries again.
    async fn trigger_final(&mut self) {
        if self
            .attempt
            .as_ref()
            .is_none_or(|a| a.final_checkpoint.is_some())
        {
            return;
        }
        if let Some(id) = self.trigger(None, true).await {
            if let Some(a) = self.attempt.as_mut() {
                a.final_checkpoint = Some(id);
            }
        }
    }

    /// Starts a checkpoint (or a savepoint into `target`); with `stop` the sources end once it
    /// completes. Returns its id if it started.
    async fn trigger(
        &mut self,
        savepoint: Option<(Option<String>, SavepointReply)>,
        stop: bool,
    ) -> Option<CheckpointId> {
        let job_id = self.record.job_id.clone();
        let checkpoint_dir = self.record.checkpoint_dir.clone();
        let savepoint_dir = self.record.savepoint_dir.clone();
        let Some(a) = self.attempt.as_mut() else {
            if let Some((_, reply)) = savepoint {
                let _ = reply.send(Err("the job is not running".into()));
            }
            return None;
        };
        // No checkpoint once a task has finished: it could not record that task's state.
        if !a.finished.is_empty() {
            if let Some((_, reply)) = savepoint {
                let _ = reply.send(Err("the job is finishing".into()));
            }
            return None;
        }
        let is_savepoint = savepoint.is_some();
        let target_base = savepoint
            .as_ref()
            .and_then(|(t, _)| t.clone())
            .unwrap_or(savepoint_dir);
        let location = |id: CheckpointId| {
            if is_savepoint {
                format!("{}/sp-{job_id}-{id}", target_base.trim_end_matches('/'))
            } else {
                format!(
                    "{}/{}",
                    checkpoint_dir.trim_end_matches('/'),
                    checkpoint_dir_name(id)
                )
            }
        };
        let id = match a.coordinator.trigger(now_ms(), location, is_savepoint) {
            Ok(id) => id,
            Err(_) => return None, // one periodic checkpoint at a time
        };
        self.next_checkpoint_id = id + 1;
        let target_dir = a
            .coordinator
            .history()
            .find(|s| s.id == id)
            .map(|s| s.location.clone())
            .unwrap_or_default();
        if let Some((_, reply)) = savepoint {
            a.savepoints.insert(id, (reply, stop));
        }
        let req = pb::TriggerCheckpointRequest {
            job_id: job_id.clone(),
            attempt: a.number,
            checkpoint_id: id,
            timestamp_ms: now_ms(),
            savepoint: is_savepoint,
            target_dir,
            stop,
            leader_epoch: self.term.epoch,
        };
        for tm in &a.tms {
            if let Some(mut c) = self.cluster.client(tm) {
                let req = req.clone();
                tokio::spawn(async move {
                    let _ = c.trigger_checkpoint(req).await;
                });
            }
        }
        Some(id)
    }

    async fn handle(&mut self, ev: JobEvent) -> Option<Outcome> {
        let current = self.attempt.as_ref().map(|a| a.number);
        match ev {
            JobEvent::TaskState {
                attempt,
                task,
                report,
            } if Some(attempt) == current => {
                let a = self.attempt.as_mut()?;
                match report {
                    TaskReport::Failed {
                        message,
                        deterministic: true,
                    } => {
                        return Some(Outcome::FailedForGood(format!(
                            "task {task} failed: {message}"
                        )))
                    }
                    TaskReport::Failed { message, .. } => {
                        return Some(Outcome::Failed(format!("task {task} failed: {message}")))
                    }
                    TaskReport::SourceExhausted => {
                        a.exhausted.insert(task);
                        if self.all_sources_exhausted() && self.spec.checkpoint.interval_ms > 0 {
                            info!("all sources reached their end; taking the final checkpoint");
                            self.trigger_final().await;
                        }
                    }
                    TaskReport::Finished => {
                        a.finished.insert(task);
                        let outcomes = a.coordinator.task_finished(task);
                        for o in outcomes {
                            self.finalize(o).await;
                        }
                        let a = self.attempt.as_ref()?;
                        if a.finished.len() == a.tasks.len() {
                            return Some(Outcome::Finished);
                        }
                    }
                    TaskReport::Running => {}
                }
            }
            JobEvent::Ack {
                attempt,
                task,
                checkpoint,
                handles,
            } if Some(attempt) == current => {
                let a = self.attempt.as_mut()?;
                let outcome = a.coordinator.acknowledge(task, checkpoint, handles);
                self.finalize(outcome).await;
            }
            JobEvent::Decline {
                attempt,
                checkpoint,
                reason,
            } if Some(attempt) == current => {
                let a = self.attempt.as_mut()?;
                if a.give_up(checkpoint, &reason) {
                    warn!(checkpoint, %reason, "checkpoint declined; aborted");
                }
            }
            JobEvent::TaskManagerLost(tm)
                if self.attempt.as_ref().is_some_and(|a| a.tms.contains(&tm)) =>
            {
                return Some(Outcome::Failed(format!("task manager {tm} lost")));
            }
            JobEvent::Cancel(reply) => {
                let _ = reply.send(());
                return Some(Outcome::Canceled);
            }
            JobEvent::Savepoint {
                target,
                stop,
                reply,
            } => {
                self.trigger(Some((target, reply)), stop).await;
            }
            _ => {} // events of an older attempt
        }
        None
    }

    /// Every ack of a checkpoint is in: write its metadata (which completes it), notify the
    /// tasks so sinks commit, and delete checkpoints beyond the retained count.
    async fn finalize(&mut self, outcome: AckOutcome) {
        let AckOutcome::AllAcknowledged {
            id,
            location,
            savepoint,
            operators,
        } = outcome
        else {
            return;
        };
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        // A job manager that no longer leads, or whose attempt another one has superseded,
        // completes nothing: no `_metadata` of a deposed job manager appears after the
        // takeover (the check after the write covers the race with this one).
        let number = a.number;
        if let Err(stop) = self.may_complete(number).await {
            return self.stop_checkpoint(id, stop);
        }
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        let metadata = CheckpointMetadata {
            version: FORMAT_VERSION,
            job_id: self.record.job_id.clone(),
            checkpoint_id: id,
            attempt: a.number,
            savepoint,
            timestamp_ms: now_ms(),
            max_parallelism: self.spec.max_parallelism,
            operators,
        };
        // Written once, never overwritten: of two job managers completing one id (one of them
        // deposed), one fails here.
        let written = match self.cfg.storage.open(&location) {
            Ok(s) => match s.put_if_absent(METADATA_FILE, metadata.to_json()).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!(
                    "{location}/{METADATA_FILE} exists: another job manager completed checkpoint {id}"
                )),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            warn!(checkpoint = id, error = %e, "cannot write checkpoint metadata; aborted");
            a.give_up(id, &format!("metadata write failed: {e}"));
            return;
        }
        // Sinks may commit only if no later attempt was fenced before the metadata landed
        // (weir_checkpoint::lineage): one that listed the checkpoints without this one.
        if let Err(stop) = self.may_complete(number).await {
            return self.stop_checkpoint(id, stop);
        }
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        let discard = a.coordinator.complete(id, now_ms());
        self.stalled = 0;
        info!(
            checkpoint = id,
            savepoint,
            bytes = metadata.total_bytes(),
            "checkpoint complete"
        );
        let req = pb::NotifyCheckpointCompleteRequest {
            job_id: self.record.job_id.clone(),
            attempt: a.number,
            checkpoint_id: id,
            leader_epoch: self.term.epoch,
        };
        let is_final = a.final_checkpoint == Some(id);
        for tm in &a.tms {
            tokio::spawn(notify_until_acknowledged(
                self.cluster.clone(),
                tm.clone(),
                req.clone(),
                is_final,
            ));
        }
        if let Some((reply, _stop)) = a.savepoints.remove(&id) {
            let _ = reply.send(Ok((location, id)));
        }
        delete_folders(&self.cfg.storage, discard);
        self.publish();
    }

    /// A retryable task failure is often the echo of another task's failure (its input
    /// channel closed when the other failed): the other's report, if it comes within a short
    /// while, says what happened. A deterministic one among them fails the job for good.
    async fn first_cause(&mut self, msg: String) -> Outcome {
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(ev)) => match self.handle(ev).await {
                    None | Some(Outcome::Failed(_)) => {}
                    Some(other) => return other,
                },
                Ok(None) => return Outcome::Canceled,
                Err(_) => return Outcome::Failed(msg),
            }
        }
    }

    /// Stops the tasks of a failed attempt and releases its slots.
    async fn stop_failed_attempt(&mut self, reason: &str) {
        warn!(%reason, attempt = self.record.attempt, "job attempt failed");
        if let Err(e) = self.cancel_tasks_up_to(self.record.attempt).await {
            warn!(error = %e, "the failed attempt's tasks did not all stop");
        }
        self.cluster.release(&JobId(self.record.job_id.clone()));
        if let Some(mut a) = self.attempt.take() {
            for (_, (reply, _)) in a.savepoints.drain() {
                let _ = reply.send(Err(format!("the job failed: {reason}")));
            }
            let mut v = lock(&self.view);
            v.checkpoints = a.coordinator.history().cloned().collect();
        }
    }

    /// Cancels the failed attempt and, if the restart strategy allows, waits before the next.
    /// Returns false when the job has failed for good.
    async fn restart_or_fail(&mut self, reason: String) -> bool {
        // Waited for here, so the restart delay starts once the old tasks are gone; the next
        // attempt checks again before it deploys.
        self.stop_failed_attempt(&reason).await;
        self.failures_ms.push(now_ms().max(0) as u64);
        self.stalled += 1;
        let Some(delay) = self.spec.restart.delay_after_stalls(
            self.record.restarts,
            &self.failures_ms,
            self.stalled,
        ) else {
            self.terminate(JobState::Failed, format!("{reason} (no restarts left)"))
                .await;
            return false;
        };
        self.record.restarts += 1;
        self.record.state = JobState::Restarting;
        // `weir status` shows this as the last failure: say why the job keeps restarting.
        self.record.failure = if self.stalled > 1 {
            warn!(
                stalled = self.stalled,
                delay_ms = delay,
                "the job keeps failing before it completes a checkpoint; backing off"
            );
            format!(
                "{reason} ({} attempts in a row failed before completing a checkpoint; next attempt in {:.1} s)",
                self.stalled,
                delay as f64 / 1000.0
            )
        } else {
            reason
        };
        self.persist().await;
        let wake = tokio::time::Instant::now() + Duration::from_millis(delay);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => return true,
                ev = self.rx.recv() => match ev {
                    Some(JobEvent::Cancel(reply)) => {
                        let _ = reply.send(());
                        self.terminate(JobState::Canceled, String::new()).await;
                        return false;
                    }
                    Some(JobEvent::Savepoint { reply, .. }) => { let _ = reply.send(Err("the job is restarting".into())); }
                    Some(_) => {}
                    None => return false,
                }
            }
        }
    }
}

/// Tells task manager `tm` that a checkpoint completed, again until it answers. Its sinks
/// commit on this message, and committing is idempotent; a notification lost for the final
/// checkpoint (after the sources ended) would otherwise never be made good by a later one, and
/// the job would wait for its sinks forever. Stops when the task manager is gone (its tasks
/// are too: the attempt restarts, and recovery commits what the checkpoint recorded).
async fn notify_until_acknowledged(
    cluster: Arc<Cluster>,
    tm: String,
    req: pb::NotifyCheckpointCompleteRequest,
    is_final: bool,
) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1u32.. {
        let Some(mut client) = cluster.client(&tm) else {
            return;
        };
        let lost = is_final
            && attempt == 1
            && weir_types::failpoint::drops(weir_types::failpoint::JM_FINAL_NOTIFY);
        let result = if lost {
            Err("lost (failpoint)".to_string())
        } else {
            client
                .notify_checkpoint_complete(req.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(()) => return,
            Err(e) if attempt < 60 => {
                warn!(checkpoint = req.checkpoint_id, %tm, error = %e, "checkpoint notification not delivered; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                error!(checkpoint = req.checkpoint_id, %tm, error = %e, "checkpoint notification not delivered after 60 tries");
                return;
            }
        }
    }
}

/// Deletes old checkpoint folders in the background (a failure only leaves garbage behind).
fn delete_folders(opener: &weir_storage::Opener, folders: Vec<String>) {
    if folders.is_empty() {
        return;
    }
    let opener = opener.clone();
    tokio::spawn(async move {
        for loc in folders {
            if let Ok(s) = opener.open(&loc) {
                if let Err(e) = s.delete_prefix("").await {
                    warn!(location = %loc, error = %e, "cannot delete old checkpoint");
                }
            }
        }
    });
}
