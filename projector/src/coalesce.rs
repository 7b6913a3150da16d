//! Requests made at about the same moment by many tasks, answered by one call.
//!
//! A [`Coalescer`] owns a task that takes every request waiting (up to a limit), answers them
//! with one call of its `flush` function (one statement, say), and hands each caller its own
//! answer. It never waits to fill a batch: a lone request is flushed at once, as if it were
//! called directly, and requests made while a flush runs make up the next one. So it costs
//! nothing when the load is light and saves a round trip per request when it is heavy (group
//! commit).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// One flush's answer for every caller of it: theirs, or the flush's error.
type Answer<Resp> = Result<Resp, Arc<anyhow::Error>>;

pub struct Coalescer<Req, Resp> {
    requests: mpsc::UnboundedSender<(Req, oneshot::Sender<Answer<Resp>>)>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Starts the task that flushes up to `limit` requests at once with `flush`, which answers
    /// them in the order given (as many answers as requests). The task ends when the last
    /// handle is dropped.
    pub fn spawn<F, Fut>(limit: usize, flush: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Resp>>> + Send + 'static,
    {
        let (requests, mut waiting) =
            mpsc::unbounded_channel::<(Req, oneshot::Sender<Answer<Resp>>)>();
        let limit = limit.max(1);
        tokio::spawn(async move {
            let mut taken = Vec::with_capacity(limit);
            while waiting.recv_many(&mut taken, limit).await > 0 {
                let (batch, callers): (Vec<Req>, Vec<_>) = taken.drain(..).unzip();
                let asked = batch.len();
                // On a task of its own, so that a panic in it fails this flush's callers
                // rather than every later one.
                let flushed = tokio::spawn(flush(batch)).await.unwrap_or_else(|panic| {
                    Err(anyhow::anyhow!("a coalesced call panicked: {panic}"))
                });
                let answers = flushed.and_then(|answers| match answers.len() {
                    n if n == asked => Ok(answers),
                    n => Err(anyhow::anyhow!(
                        "a coalesced call answered {n} of {asked} requests"
                    )),
                });
                match answers {
                    Ok(answers) => {
                        for (caller, answer) in callers.into_iter().zip(answers) {
                            let _ = caller.send(Ok(answer));
                        }
                    }
                    Err(err) => {
                        let err = Arc::new(err);
                        for caller in callers {
                            let _ = caller.send(Err(err.clone()));
                        }
                    }
                }
            }
        });
        Self { requests }
    }

    /// `request`'s answer, from the next flush.
    pub async fn call(&self, request: Req) -> anyhow::Result<Resp> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send((request, answer))
            .map_err(|_| anyhow::anyhow!("the coalescer's task has stopped"))?;
        match answered.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => Err(anyhow::anyhow!("{err:#}")),
            Err(_) => anyhow::bail!("the coalescer's task stopped before answering"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn callers_waiting_together_are_answered_by_one_flush_each_with_their_own_answer() {
        let flushes: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = flushes.clone();
        let doubler = Coalescer::spawn(64, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.clone());
            async move {
                // Slow enough for the other callers to queue behind the first flush.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(batch.into_iter().map(|n| n * 2).collect())
            }
        });
        let calls = (0..100u32).map(|n| {
            let doubler = doubler.clone();
            async move { (n, doubler.call(n).await.unwrap()) }
        });
        for (n, doubled) in futures::future::join_all(calls).await {
            assert_eq!(doubled, n * 2);
        }
        let flushes = flushes.lock().unwrap();
        assert!(
            flushes.len() < 10,
            "100 callers at once are answered by a few flushes, not {}",
            flushes.len()
        );
        assert!(flushes.iter().all(|b| b.len() <= 64), "the limit holds");
        let mut asked: Vec<u32> = flushes.iter().flatten().copied().collect();
        asked.sort_unstable();
        assert_eq!(asked, (0..100).collect::<Vec<_>>(), "each request once");
    }

    #[tokio::test]
    async fn a_failed_or_panicking_flush_fails_its_callers_and_the_next_flush_goes_on() {
        let failing = Coalescer::spawn(8, |batch: Vec<u32>| async move {
            match batch.first() {
                Some(0) => anyhow::bail!("the database is down"),
                Some(1) => Ok(vec![]),
                Some(2) => panic!("a bug"),
                _ => Ok(batch),
            }
        });
        let err = failing.call(0).await.unwrap_err();
        assert!(err.to_string().contains("the database is down"), "{err}");
        let err = failing.call(1).await.unwrap_err();
        assert!(err.to_string().contains("answered 0 of 1"), "{err}");
        let err = failing.call(2).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(failing.call(7).await.unwrap(), 7);
    }
}
