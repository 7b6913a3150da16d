//! Waking log readers once per committed transaction, without polling and without slowing
//! commits down.
//!
//! Postgres `NOTIFY` would do, but notifying transactions serialize on a global lock at
//! commit, which caps concurrent appends at one writer's rate. Instead a writer announces its
//! commit on a core NATS subject (no JetStream, nothing stored). Announcing never blocks the
//! writer: it bumps a counter that a background task turns into at most one message per burst
//! of commits. A lost announcement (NATS down, a writer crashing between commit and announce)
//! only delays readers until their fallback timer; it never loses events, because readers
//! always read the log itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;

/// The writer's side: announce that a transaction with events committed.
#[derive(Clone)]
pub struct Wakeups {
    client: async_nats::Client,
    subject: String,
    commits: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Wakeups {
    /// Starts the announcing task on the current tokio runtime. It ends when the last clone of
    /// the returned value is dropped.
    pub fn new(client: async_nats::Client, ns: &nats::Namespace) -> Self {
        let (commits, mut seen) = watch::channel(0u64);
        let subject = ns.commit_wakeup();
        let announcer = client.clone();
        let announce_subject = subject.clone();
        tokio::spawn(async move {
            while seen.changed().await.is_ok() {
                seen.mark_unchanged();
                if let Err(err) = announcer
                    .publish(announce_subject.clone(), Bytes::new())
                    .await
                {
                    tracing::debug!(error = %err, "could not announce a commit; readers fall back to polling");
                }
            }
        });
        Self {
            client,
            subject,
            commits: Arc::new(commits),
        }
    }

    /// Announces a commit. Never blocks; bursts coalesce into one message.
    pub fn announce(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A reader's side of the same subject.
    pub async fn listen(&self) -> CommitListener {
        CommitListener::subscribe(&self.client, self.subject.clone()).await
    }
}

/// Waits for commit announcements, with a fallback timer.
pub struct CommitListener {
    subscription: Option<async_nats::Subscriber>,
}

impl CommitListener {
    pub async fn subscribe(client: &async_nats::Client, subject: String) -> Self {
        let subscription = match client.subscribe(subject).await {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for commits; polling instead");
                None
            }
        };
        Self { subscription }
    }

    /// A listener that only ever times out (no NATS): readers poll at their fallback interval.
    pub fn polling() -> Self {
        Self { subscription: None }
    }

    /// Returns when a commit was announced or after `at_most`, whichever comes first; true if
    /// woken by an announcement. Announcements that queued up meanwhile are drained, so a burst
    /// of commits costs the reader one read, not one per commit.
    pub async fn wait(&mut self, at_most: Duration) -> bool {
        let Some(sub) = self.subscription.as_mut() else {
            tokio::time::sleep(at_most).await;
            return false;
        };
        match tokio::time::timeout(at_most, sub.next()).await {
            Ok(Some(_)) => {
                while let Some(Some(_)) = sub.next().now_or_never() {}
                true
            }
            Ok(None) => {
                // The subscription ended (client closed): from now on, poll.
                self.subscription = None;
                false
            }
            Err(_) => false,
        }
    }
}
