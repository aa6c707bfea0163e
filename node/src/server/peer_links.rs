//! How this node's connections to its peers fare: the last error reaching each one, which the
//! admin API reports with the member (and the operator puts in the cluster's status), and
//! warnings that say a peer is unreachable without flooding the log.
//!
//! A leader that cannot reach a learner used to say nothing at the default level: a scale-up
//! stuck for minutes on a DNS name that did not resolve left no trace in any log or status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::raft::NodeId;

/// At most one warning per peer in this long; the failures in between are counted and logged
/// at debug level.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The connections to every peer.
#[derive(Default)]
pub struct PeerLinks {
    links: Mutex<BTreeMap<NodeId, Link>>,
    /// Peers with an error recorded.
    failing: AtomicUsize,
}

#[derive(Default)]
struct Link {
    /// Why the last attempt failed; `None` once a message came from it again.
    error: Option<String>,
    /// Failed attempts since it was last heard from.
    failures: u64,
    /// When a warning about this peer was last logged.
    last_warning: Option<Instant>,
    /// A warning was logged since it was last heard from: its recovery is worth a line too.
    warned: bool,
}

impl PeerLinks {
    /// An attempt to reach `peer` failed with `error`.
    pub fn failed(&self, peer: NodeId, address: &str, error: String) {
        let now = Instant::now();
        let mut links = self.lock();
        let link = links.entry(peer).or_default();
        link.failures += 1;
        if warning_due(link.last_warning, now) {
            link.last_warning = Some(now);
            link.warned = true;
            tracing::warn!(
                peer,
                %address,
                %error,
                failures = link.failures,
                "cannot reach peer; retrying"
            );
        } else {
            tracing::debug!(peer, %address, %error, failures = link.failures, "cannot reach peer");
        }
        if link.error.replace(error).is_none() {
            self.failing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message came from `peer`: the two can talk, whatever failed before. (A connection
    /// that opens proves less: a peer that refuses our cluster id accepts the connection and
    /// then ends the stream.)
    pub fn heard_from(&self, peer: NodeId) {
        // The common case, every message, takes no lock.
        if self.failing.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut links = self.lock();
        let Some(link) = links.get_mut(&peer) else {
            return;
        };
        if link.error.take().is_none() {
            return;
        }
        self.failing.fetch_sub(1, Ordering::Relaxed);
        if std::mem::take(&mut link.warned) {
            tracing::info!(peer, failures = link.failures, "reached peer again");
        }
        link.failures = 0;
    }

    /// Why the last attempt to reach `peer` failed, until a message comes from it.
    pub fn last_error(&self, peer: NodeId) -> Option<String> {
        self.lock().get(&peer).and_then(|link| link.error.clone())
    }

    /// `peer` left the configuration: what was known about reaching it no longer matters.
    pub fn forget(&self, peer: NodeId) {
        if let Some(Link { error: Some(_), .. }) = self.lock().remove(&peer) {
            self.failing.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a failure at `now` is logged as a warning, given when the last warning was.
fn warning_due(last_warning: Option<Instant>, now: Instant) -> bool {
    last_warning.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_is_kept_until_a_connection_works() {
        let links = PeerLinks::default();
        assert_eq!(links.last_error(2), None);
        links.failed(2, "b:2380", "dns error: no such host".into());
        links.failed(2, "b:2380", "connection refused".into());
        assert_eq!(links.last_error(2).as_deref(), Some("connection refused"));
        assert_eq!(links.last_error(3), None, "another peer is unaffected");
        links.heard_from(2);
        assert_eq!(links.last_error(2), None);
        links.heard_from(2);
        links.failed(2, "b:2380", "connection reset".into());
        links.forget(2);
        assert_eq!(links.last_error(2), None);
    }

    #[test]
    fn warnings_about_one_peer_are_at_least_the_interval_apart() {
        let start = Instant::now();
        assert!(warning_due(None, start), "the first failure warns");
        assert!(!warning_due(Some(start), start + WARN_EVERY / 2));
        assert!(warning_due(Some(start), start + WARN_EVERY));
    }
}
