//! The requests and answers of the client API as Rust types: what the gRPC messages of
//! `kv.proto` carry, without their wire-format conventions (0 for "none", enums as integers,
//! optional headers).

use std::time::Duration;

use bytes::Bytes;

use crate::proto;
use crate::raft::NodeId;

pub use crate::proto::KeyValue;

/// How fresh a read must be. A request that names none gets the node's configured
/// `default_read_policy` (linearizable unless configured otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadPolicy {
    /// Reflects every write acknowledged before the read started: a read index confirmed by
    /// a quorum round (shared by concurrent reads), then served once applied here.
    Linearizable,
    /// Served by the leader's state while its lease holds (a quorum answered heartbeats
    /// recently); assumes bounded clock drift. No quorum round.
    Lease,
    /// This node's applied state at once; may be stale. The header's revision says how fresh.
    Eventual,
}

impl From<crate::server::config::DefaultReadPolicy> for ReadPolicy {
    fn from(policy: crate::server::config::DefaultReadPolicy) -> Self {
        use crate::server::config::DefaultReadPolicy;
        match policy {
            DefaultReadPolicy::Linearizable => ReadPolicy::Linearizable,
            DefaultReadPolicy::Lease => ReadPolicy::Lease,
            DefaultReadPolicy::Eventual => ReadPolicy::Eventual,
        }
    }
}

/// Which state an answer was read from or written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub cluster_id: u64,
    /// The member that answered: this node, or the leader for a forwarded write.
    pub member_id: NodeId,
    /// The revision of the state read, or of the write.
    pub revision: i64,
    pub raft_term: u64,
}

impl From<proto::ResponseHeader> for Header {
    fn from(h: proto::ResponseHeader) -> Self {
        Self {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        }
    }
}

impl From<Header> for proto::ResponseHeader {
    fn from(h: Header) -> Self {
        Self {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        }
    }
}

/// Options of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Delete the key this long after the write (the leader decides when, by its clock, and
    /// deletes it through the log). Kept to the millisecond; anything shorter counts as 1 ms.
    pub ttl: Option<Duration>,
    /// Return the key as it was before the write.
    pub prev_kv: bool,
}

impl PutOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// A TTL as the API's milliseconds: 0 is none.
pub(crate) fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| {
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// The API's TTL in milliseconds as a duration: 0 is none.
pub(crate) fn ttl_from_ms(ttl_ms: u64) -> Option<Duration> {
    (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms))
}

#[derive(Debug, Clone, PartialEq)]
pub struct PutResponse {
    pub header: Header,
    /// The key before the write, when asked for and it existed.
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetResponse {
    pub header: Header,
    /// `None` when the key does not exist.
    pub kv: Option<KeyValue>,
}

/// Options of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Return the key as it was before the delete.
    pub prev_kv: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteResponse {
    pub header: Header,
    /// Whether the key existed. Deleting a missing key succeeds.
    pub deleted: bool,
    pub prev_kv: Option<KeyValue>,
}

/// The condition of a compare-and-swap on the current state of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The current value equals this.
    Value(Bytes),
    /// The key's mod revision equals this.
    ModRevision(i64),
    /// The key does not exist (`absent: true` over gRPC).
    Absent,
    /// The key exists, whatever its value (`absent: false` over gRPC).
    Present,
}

impl From<Compare> for proto::Compare {
    fn from(compare: Compare) -> Self {
        use proto::compare::Target;
        proto::Compare {
            target: Some(match compare {
                Compare::Value(value) => Target::Value(value),
                Compare::ModRevision(revision) => Target::ModRevision(revision),
                Compare::Absent => Target::Absent(true),
                Compare::Present => Target::Absent(false),
            }),
        }
    }
}

impl Compare {
    /// The comparison a gRPC request names, if it names one.
    pub(crate) fn from_proto(compare: Option<proto::Compare>) -> Option<Self> {
        use proto::compare::Target;
        Some(match compare?.target? {
            Target::Value(value) => Compare::Value(value),
            Target::ModRevision(revision) => Compare::ModRevision(revision),
            Target::Absent(true) => Compare::Absent,
            Target::Absent(false) => Compare::Present,
        })
    }
}

/// Options of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompareAndSwapOptions {
    /// A TTL for the new value, as in [`PutOptions::ttl`].
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompareAndSwapResponse {
    pub header: Header,
    /// Whether the comparison held and the new value was written.
    pub succeeded: bool,
    /// The key as it was when the comparison was evaluated (`None` if it did not exist).
    pub current: Option<KeyValue>,
}

/// A page of keys under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanRequest {
    /// Keys starting with this; empty for every key.
    pub prefix: Bytes,
    /// At most this many keys; 0 means the node's `max_scan_limit` (which also caps it).
    pub limit: u32,
    /// From the previous page's [`ScanResponse::continuation`]; empty for the first page.
    pub continuation: Bytes,
    /// `None`: the node's default policy.
    pub read_policy: Option<ReadPolicy>,
    /// The keys as they were at this revision; 0 for now.
    pub revision: i64,
}

impl ScanRequest {
    /// The first page of keys under `prefix`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        Self {
            prefix: Bytes::copy_from_slice(prefix.as_ref()),
            ..Self::default()
        }
    }

    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn with_read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read_policy = Some(policy);
        self
    }

    /// The keys as they were at `revision` (pass it with every page).
    pub fn at_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// The page after the one that returned `continuation`.
    pub fn after(mut self, continuation: Bytes) -> Self {
        self.continuation = continuation;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScanResponse {
    pub header: Header,
    /// In key order.
    pub kvs: Vec<KeyValue>,
    /// Pass to [`ScanRequest::after`] for the next page; empty when there are no more keys.
    pub continuation: Bytes,
}

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchRequest {
    pub key: Bytes,
    /// Watch every key starting with `key` (an empty `key` watches everything).
    pub prefix: bool,
    /// Replay retained events from this revision on (inclusive), then follow; 0 follows from
    /// now. Older than the retained history fails with [`ApiError::Compacted`].
    ///
    /// [`ApiError::Compacted`]: super::ApiError::Compacted
    pub start_revision: i64,
}

impl WatchRequest {
    /// Watches one key.
    pub fn key(key: impl AsRef<[u8]>) -> Self {
        Self {
            key: Bytes::copy_from_slice(key.as_ref()),
            ..Self::default()
        }
    }

    /// Watches every key under `prefix`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        Self {
            prefix: true,
            ..Self::key(prefix)
        }
    }

    /// Replays from `revision` (inclusive) before following.
    pub fn from_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change of a watched key.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// The key after a put; for a delete, the key with the delete's revision as
    /// `mod_revision` and no value.
    pub kv: KeyValue,
}

impl WatchEvent {
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

impl From<proto::Event> for WatchEvent {
    fn from(event: proto::Event) -> Self {
        Self {
            kind: match event.event_type() {
                proto::event::EventType::Put => EventKind::Put,
                proto::event::EventType::Delete => EventKind::Delete,
            },
            kv: event.kv.unwrap_or_default(),
        }
    }
}

impl From<WatchEvent> for proto::Event {
    fn from(event: WatchEvent) -> Self {
        let event_type = match event.kind {
            EventKind::Put => proto::event::EventType::Put,
            EventKind::Delete => proto::event::EventType::Delete,
        };
        proto::Event {
            event_type: event_type as i32,
            kv: Some(event.kv),
        }
    }
}

/// Events of one applied batch that match a watch, in revision order.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchResponse {
    /// `revision` is that of the last event; `raft_term` is not set.
    pub header: Header,
    pub events: Vec<WatchEvent>,
}

/// This node's view of leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleEvent {
    /// This node leads the cluster in `term`.
    pub is_leader: bool,
    /// The Raft term: strictly greater for every new leadership, so it can fence a stale
    /// leader.
    pub term: u64,
    /// The leader this node knows of.
    pub leader_id: Option<NodeId>,
    /// This node.
    pub member_id: NodeId,
}

impl From<&crate::server::status::NodeStatus> for RoleEvent {
    fn from(status: &crate::server::status::NodeStatus) -> Self {
        Self {
            is_leader: status.role == crate::raft::Role::Leader,
            term: status.term,
            leader_id: (status.leader != 0).then_some(status.leader),
            member_id: status.id,
        }
    }
}

impl From<RoleEvent> for proto::RoleEvent {
    fn from(event: RoleEvent) -> Self {
        Self {
            is_leader: event.is_leader,
            term: event.term,
            leader_id: event.leader_id.unwrap_or(0),
            member_id: event.member_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_and_ttls_translate_to_the_wire_and_back() {
        for compare in [
            Compare::Value(Bytes::from_static(b"v")),
            Compare::ModRevision(7),
            Compare::Absent,
            Compare::Present,
        ] {
            let wire = proto::Compare::from(compare.clone());
            assert_eq!(Compare::from_proto(Some(wire)), Some(compare));
        }
        assert_eq!(Compare::from_proto(None), None);
        assert_eq!(
            Compare::from_proto(Some(proto::Compare { target: None })),
            None
        );

        assert_eq!(ttl_ms(None), 0);
        assert_eq!(ttl_ms(Some(Duration::ZERO)), 1);
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(ttl_from_ms(0), None);
        assert_eq!(ttl_from_ms(1500), Some(Duration::from_millis(1500)));
    }
}
