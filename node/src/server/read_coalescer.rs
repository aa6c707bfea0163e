//! One read-index request to the leader at a time for all of a follower's reads.
//!
//! A follower serving a linearizable (or lease) read asks the leader for its read index. Asking
//! once per read costs the leader one RPC and one quorum round each; under load, reads pile up
//! behind each other. Instead, as etcd's `linearizableReadLoop` does, reads share requests: a
//! read may use the answer of any request the follower *sent after the read arrived* (the
//! leader's commit index at that moment covers every write acknowledged before the read began),
//! never one already in flight when it arrived. So while one request is in flight, the reads
//! arriving meanwhile wait, and the next request, sent as soon as it returns, serves them all.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The result of the latest request and how many reads had arrived when it was sent.
struct Round<T> {
    arrivals_covered: u64,
    result: T,
}

pub struct ReadCoalescer<T> {
    /// Reads that have arrived, ever; a read's ticket is the count before it.
    arrivals: AtomicU64,
    /// Held while a request is in flight. Tokio's mutex is fair, so reads go in arrival order.
    in_flight: tokio::sync::Mutex<()>,
    latest: Mutex<Option<Round<T>>>,
}

impl<T: Clone> Default for ReadCoalescer<T> {
    fn default() -> Self {
        Self {
            arrivals: AtomicU64::new(0),
            in_flight: tokio::sync::Mutex::new(()),
            latest: Mutex::new(None),
        }
    }
}

impl<T: Clone> ReadCoalescer<T> {
    /// The answer of a request sent after this call began: `request`'s own, or one another
    /// read sent meanwhile.
    pub async fn read<F, Fut>(&self, request: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let ticket = self.arrivals.fetch_add(1, Ordering::SeqCst);
        let _turn = self.in_flight.lock().await;
        if let Some(result) = self.covered(ticket) {
            return result;
        }
        // Every read that has arrived so far, this one included, may use this request.
        let arrivals_covered = self.arrivals.load(Ordering::SeqCst);
        let result = request().await;
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Round {
            arrivals_covered,
            result: result.clone(),
        });
        result
    }

    /// The latest request's answer, if it was sent after read `ticket` arrived.
    fn covered(&self, ticket: u64) -> Option<T> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest
            .as_ref()
            .filter(|round| round.arrivals_covered > ticket)
            .map(|round| round.result.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn a_lone_read_sends_its_own_request_every_time() {
        let coalescer = ReadCoalescer::default();
        let sent = AtomicUsize::new(0);
        for expected in 1..=3 {
            let answer = coalescer
                .read(|| async { sent.fetch_add(1, Ordering::SeqCst) + 1 })
                .await;
            assert_eq!(answer, expected, "a later read reused an earlier answer");
        }
    }

    #[tokio::test]
    async fn reads_arriving_during_a_request_share_the_next_one_not_the_current_one() {
        let coalescer = Arc::new(ReadCoalescer::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let request = {
            let sent = sent.clone();
            let release = release.clone();
            move || async move {
                let round = sent.fetch_add(1, Ordering::SeqCst) + 1;
                release.notified().await;
                round
            }
        };
        let first = tokio::spawn({
            let (coalescer, request) = (coalescer.clone(), request.clone());
            async move { coalescer.read(request).await }
        });
        while sent.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        // Ten reads arrive while the first request is in flight.
        let later: Vec<_> = (0..10)
            .map(|_| {
                let (coalescer, request) = (coalescer.clone(), request.clone());
                tokio::spawn(async move { coalescer.read(request).await })
            })
            .collect();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        assert_eq!(first.await.unwrap(), 1);
        while sent.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for read in later {
            assert_eq!(
                read.await.unwrap(),
                2,
                "a read used a request sent before it arrived"
            );
        }
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "the ten reads did not share one request"
        );
    }
}
