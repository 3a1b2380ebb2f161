//! What an operator asks of the webhook service (`/subscriptions`): create, list, read, change,
//! pause, resume, delete, rotate a secret, replay, dead letters, redeliver, attempts. Each
//! change stops the subscription's delivery task, changes the store and starts a new task, so
//! a task never races an operator. This must never return or log a stored secret (only the
//! create and rotate answers carry the new one).

use serde_json::Value;
use uuid::Uuid;

use super::*;

impl Service {
    pub(super) fn config(&self) -> &WebhookConfig {
        &self.inner.ctx.config
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.ctx.store
    }

    /// The outward view of a subscription (never its secrets).
    fn view(&self, sub: &Subscription) -> Result<Value, WebhookError> {
        let cursor = self.store().cursor(&sub.id)?;
        Ok(sub.view(cursor, self.inner.ctx.log.head().seq, now_ms()))
    }

    fn load(&self, id: &str) -> Result<Subscription, WebhookError> {
        let uuid = Uuid::parse_str(id).map_err(|_| WebhookError::NotFound(id.to_string()))?;
        self.store()
            .subscription(&uuid)?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))
    }

    fn check_in_flight(&self, mode: Mode, n: Option<u32>) -> Result<u32, WebhookError> {
        match (mode, n) {
            (Mode::Ordered, None | Some(1)) => Ok(1),
            (Mode::Ordered, Some(_)) => Err(invalid(
                "/max_in_flight",
                "ordered mode sends one message at a time; use mode parallel for more",
            )),
            (Mode::Parallel, None) => Ok(8.min(self.config().max_in_flight)),
            (Mode::Parallel, Some(n)) if n >= 1 && n <= self.config().max_in_flight => Ok(n),
            (Mode::Parallel, Some(n)) => Err(invalid(
                "/max_in_flight",
                format!(
                    "must be between 1 and {} (webhooks.max_in_flight), got {n}",
                    self.config().max_in_flight
                ),
            )),
        }
    }

    async fn check_url(&self, url: &str) -> Result<(), WebhookError> {
        let parsed = guard::parse(url)?;
        guard::check(&parsed, self.config().allow_private_targets).await?;
        Ok(())
    }

    /// Creates a subscription; answers its view and its secret (shown this once).
    pub async fn create(&self, new: NewSubscription) -> Result<(Value, String), WebhookError> {
        self.check_url(&new.url).await?;
        let max_in_flight = self.check_in_flight(new.mode, new.max_in_flight)?;
        if new.from_seq == Some(0) {
            return Err(invalid("/from_seq", "seqs start at 1"));
        }
        let _guard = self.inner.control.lock().await;
        let now = ms_to_rfc3339(now_ms());
        let secret = signing::new_secret();
        let sub = Subscription {
            id: Uuid::now_v7(),
            url: new.url,
            description: new.description,
            filter: new.filter,
            mode: new.mode,
            max_in_flight,
            rate_limit_per_sec: new.rate_limit_per_sec.filter(|r| *r > 0),
            status: Status::Active,
            status_reason: None,
            created_at: now.clone(),
            updated_at: now,
            failing_since_ms: None,
            secrets: vec![Secret {
                key: secret.clone(),
                expires_at_ms: None,
            }],
        };
        let cursor = match new.from_seq {
            Some(from) => from - 1,
            None => self.inner.ctx.log.head().seq,
        };
        self.store().set_cursor(&sub.id, cursor)?;
        self.store().put_subscription(&sub)?;
        // The caller holds the only copy of the secret once we answer: make it durable first.
        self.sync().await?;
        self.start_worker(&sub);
        tracing::info!(subscription = %sub.id, url = %sub.url, "webhook subscription created");
        Ok((self.view(&sub)?, secret))
    }

    /// Every subscription, oldest first.
    pub fn list(&self) -> Result<Vec<Value>, WebhookError> {
        self.store()
            .subscriptions()?
            .iter()
            .map(|s| self.view(s))
            .collect()
    }

    /// One subscription.
    pub fn get(&self, id: &str) -> Result<Value, WebhookError> {
        self.view(&self.load(id)?)
    }

    /// Stops the task, changes the stored subscription, restarts the task if active.
    async fn change(
        &self,
        id: &str,
        f: impl FnOnce(&mut Subscription) -> Result<(), WebhookError>,
    ) -> Result<Subscription, WebhookError> {
        let _guard = self.inner.control.lock().await;
        let uuid = self.load(id)?.id;
        self.stop_worker(&uuid).await;
        // Reload: the task may have changed it (status, failing_since) before it stopped.
        let mut sub = self.load(id)?;
        let result = f(&mut sub);
        if result.is_ok() {
            sub.updated_at = ms_to_rfc3339(now_ms());
            self.store().put_subscription(&sub)?;
            self.sync().await?;
        }
        self.start_worker(&sub);
        result.map(|()| sub)
    }

    /// Applies a patch.
    pub async fn update(&self, id: &str, patch: SubscriptionPatch) -> Result<Value, WebhookError> {
        if let Some(url) = &patch.url {
            self.check_url(url).await?;
        }
        let current = self.load(id)?;
        let mode = patch.mode.unwrap_or(current.mode);
        let in_flight = match (patch.max_in_flight, patch.mode) {
            (Some(n), _) => Some(self.check_in_flight(mode, Some(n))?),
            (None, Some(_)) => Some(self.check_in_flight(mode, None)?),
            (None, None) => None,
        };
        let sub = self
            .change(id, |sub| {
                if let Some(url) = patch.url {
                    sub.url = url;
                }
                if let Some(d) = patch.description {
                    sub.description = d;
                }
                if let Some(f) = patch.filter {
                    sub.filter = f;
                }
                sub.mode = mode;
                if let Some(n) = in_flight {
                    sub.max_in_flight = n;
                }
                if let Some(r) = patch.rate_limit_per_sec {
                    sub.rate_limit_per_sec = Some(r).filter(|r| *r > 0);
                }
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Pauses delivery (the cursor stays where it is).
    pub async fn pause(&self, id: &str) -> Result<Value, WebhookError> {
        let sub = self
            .change(id, |sub| {
                sub.status = Status::Paused;
                sub.status_reason = Some("paused by an operator".into());
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Resumes a paused or disabled subscription from its cursor.
    pub async fn resume(&self, id: &str) -> Result<Value, WebhookError> {
        let sub = self
            .change(id, |sub| {
                if sub.signing_secrets(now_ms()).is_empty() {
                    return Err(WebhookError::NoSecret(sub.id));
                }
                sub.status = Status::Active;
                sub.status_reason = None;
                sub.failing_since_ms = None;
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Deletes a subscription with its cursor, dead letters and attempts.
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let _guard = self.inner.control.lock().await;
        let uuid = self.load(id)?.id;
        self.stop_worker(&uuid).await;
        self.store().delete(&uuid)?;
        let label = uuid.to_string();
        let metrics = &self.inner.ctx.metrics;
        let _ = metrics.lag.remove_label_values(&[&label]);
        let _ = metrics.dead_letters_evicted.remove_label_values(&[&label]);
        self.sync().await?;
        tracing::info!(subscription = %uuid, "webhook subscription deleted");
        Ok(())
    }

    /// Starts a new secret; the previous one keeps signing for `secret_overlap_secs`.
    /// Answers the new secret and when the previous one stops signing.
    pub async fn rotate_secret(&self, id: &str) -> Result<(String, String), WebhookError> {
        let secret = signing::new_secret();
        let now = now_ms();
        let until = now + self.config().secret_overlap_secs * 1000;
        let new = secret.clone();
        self.change(id, move |sub| {
            let mut secrets = vec![Secret {
                key: new,
                expires_at_ms: None,
            }];
            for mut old in sub.secrets.drain(..) {
                if old.expires_at_ms.is_none() {
                    old.expires_at_ms = Some(until);
                }
                if old.expires_at_ms.is_some_and(|t| t > now) {
                    secrets.push(old);
                }
            }
            sub.secrets = secrets;
            Ok(())
        })
        .await?;
        tracing::info!(subscription = %id, "webhook secret rotated");
        Ok((secret, ms_to_rfc3339(until)))
    }

    /// Moves the cursor so delivery starts again at `from_seq`.
    pub async fn replay(&self, id: &str, from_seq: u64) -> Result<Value, WebhookError> {
        if from_seq == 0 {
            return Err(invalid("/from_seq", "seqs start at 1"));
        }
        let head = self.inner.ctx.log.head().seq;
        if from_seq > head + 1 {
            return Err(invalid(
                "/from_seq",
                format!(
                    "the log ends at seq {head}; replay from at most {}",
                    head + 1
                ),
            ));
        }
        let store = self.store().clone();
        let sub = self
            .change(id, move |sub| {
                store.set_cursor(&sub.id, from_seq - 1)?;
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// One page of a subscription's dead letters: up to `limit` with a seq above `after`, by
    /// seq, and the `after` that continues the list (`None` once this page reached its end).
    pub fn dead_letters(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Option<u64>), WebhookError> {
        let sub = self.load(id)?;
        let limit = limit.max(1);
        // One more than asked tells whether another page exists without a second read.
        let mut page = self
            .store()
            .dead_letters_after(&sub.id, after, limit.saturating_add(1))?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|d| d.seq)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Queues dead letters (all, or the one at `seq`) for redelivery; answers how many. They
    /// stay dead letters until delivered, so a crash loses none.
    pub async fn redeliver(&self, id: &str, seq: Option<u64>) -> Result<usize, WebhookError> {
        let store = self.store().clone();
        let mut queued = 0;
        let count = &mut queued;
        self.change(id, move |sub| {
            let letters = store.dead_letters(&sub.id)?;
            if let Some(seq) = seq
                && !letters.iter().any(|d| d.seq == seq)
            {
                return Err(WebhookError::NoDeadLetter { id: sub.id, seq });
            }
            for mut dl in letters {
                if seq.is_none_or(|s| s == dl.seq) {
                    dl.redeliver = true;
                    store.put_dead_letter(&sub.id, &dl)?;
                    *count += 1;
                }
            }
            Ok(())
        })
        .await?;
        Ok(queued)
    }

    /// Recent attempts, newest first.
    pub fn attempts(&self, id: &str, limit: usize) -> Result<Vec<Attempt>, WebhookError> {
        let sub = self.load(id)?;
        let keep = self.config().attempts_kept as u64;
        Ok(self.store().attempts(&sub.id, limit, keep)?)
    }
}
