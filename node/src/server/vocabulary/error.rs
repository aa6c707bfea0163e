//! [`ApiError`]: why a client request failed, as a type. The gRPC service serves each as the
//! status [`ApiError::code`] names, with the same message; an embedded application matches on
//! the variants.

use tonic::{Code, Status};

use crate::raft::{NodeId, ProposeError};

/// The gRPC metadata key that names the limit an `INVALID_ARGUMENT` exceeded, so that a node
/// relaying the leader's answer (and any client) reads it as data, not from the message text.
pub const LIMIT_METADATA: &str = "dengine-limit";

/// The limits a request can exceed, as named in configuration and in error messages.
pub const LIMIT_NAMES: [&str; 4] = [
    "max_key_bytes",
    "max_value_bytes",
    "max_request_bytes",
    "max_scan_limit",
];

/// Why a request failed. Every message says what to do about it.
///
/// | variant | gRPC status |
/// | --- | --- |
/// | [`InvalidArgument`](Self::InvalidArgument) | `INVALID_ARGUMENT` |
/// | [`NotLeader`](Self::NotLeader), [`Transferring`](Self::Transferring), [`Unavailable`](Self::Unavailable), [`ShuttingDown`](Self::ShuttingDown) | `UNAVAILABLE` |
/// | [`Compacted`](Self::Compacted), [`FutureRevision`](Self::FutureRevision) | `OUT_OF_RANGE` |
/// | [`WatchLagged`](Self::WatchLagged) | `RESOURCE_EXHAUSTED` |
/// | [`FailedPrecondition`](Self::FailedPrecondition) | `FAILED_PRECONDITION` |
/// | [`OutcomeUnknown`](Self::OutcomeUnknown) | `UNKNOWN` |
/// | [`DeadlineExceeded`](Self::DeadlineExceeded) | `DEADLINE_EXCEEDED` |
/// | [`Internal`](Self::Internal) | `INTERNAL` |
/// | [`Etcd`](Self::Etcd) | etcd's own code for the error |
/// | [`Remote`](Self::Remote) | the leader's own status |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Bad input: an empty key, a key, value, request or page over a limit (`limit` names it,
    /// e.g. `max_key_bytes`), a continuation from another prefix, a compare-and-swap without a
    /// comparison, an unknown read policy. Retrying the same request fails the same way.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        limit: Option<&'static str>,
    },
    /// No leader is known (none was elected within three election timeouts), or its address
    /// is not. Nothing was applied; retry once the cluster has a leader.
    #[error("this node is not the leader{}", leader_text(*.leader, .address))]
    NotLeader {
        leader: Option<NodeId>,
        address: Option<String>,
    },
    /// The leader is handing leadership to node `to` and takes no new proposals meanwhile.
    /// Nothing was applied; retry once the transfer is over.
    #[error(
        "leadership is being transferred to node {to}; the request was not applied and may be retried"
    )]
    Transferring { to: NodeId },
    /// This node cannot serve the request now: leadership changed before a write committed
    /// (it was not applied), the leader's lease lapsed, the leader could not be reached, or
    /// this node has not caught up with a read index in time. Retry, perhaps after a moment.
    #[error("{0}")]
    Unavailable(String),
    /// The node is stopping or stopped; streams end with it.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A watch asked for history this node no longer holds: compacted, or skipped by a
    /// snapshot this node installed. Re-read the state and watch from `oldest_retained`.
    #[error("{message}")]
    Compacted {
        message: String,
        oldest_retained: i64,
    },
    /// A read at a revision the cluster has not reached yet.
    #[error("revision {requested} is a future revision; the current revision is {current}")]
    FutureRevision { requested: i64, current: i64 },
    /// A watcher fell behind the event stream and was dropped; watch again from
    /// `resume_from` to continue without a gap.
    #[error("watch fell behind the event stream; resume with start_revision {resume_from}")]
    WatchLagged { resume_from: i64 },
    /// Refused in this state of the cluster (e.g. a membership change that is not safe now).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The request may or may not have taken effect: read the key to learn which.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The leader did not answer a forwarded request in time; a write may have been applied.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A storage failure or a bug; the message says which.
    #[error("{0}")]
    Internal(String),
    /// An error of etcd's v3 API, with etcd's own code and message (clients match on the
    /// text, e.g. "etcdserver: requested lease not found").
    #[error("{message}")]
    Etcd { code: Code, message: &'static str },
    /// The leader answered a forwarded request with a status this node passes on as is.
    #[error("{message}")]
    Remote { code: Code, message: String },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            message: message.into(),
            limit: None,
        }
    }

    /// An argument over the limit `limit` (one of [`LIMIT_NAMES`]).
    pub fn over_limit(limit: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            message: message.into(),
            limit: Some(limit),
        }
    }

    /// A write proposed under a leader that lost leadership before it committed: another
    /// entry took its index, so it was not applied.
    pub fn leadership_changed() -> Self {
        ApiError::Unavailable(
            "leadership changed before the request committed; it was not applied and may be retried"
                .into(),
        )
    }

    /// A lease read on a leader whose lease has lapsed (or that cannot hold one now).
    pub fn lease_lapsed() -> Self {
        ApiError::Unavailable(
            "the lease of this leader has lapsed; retry or use a linearizable read".into(),
        )
    }

    /// The node's storage failed: it stops serving, and every waiting request is told why.
    pub fn storage_failed(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(format!(
            "storage failure: {error}; the node stopped serving writes"
        ))
    }

    /// Why the Raft core refused a proposal; `address` finds the address of a known leader.
    pub fn from_propose(error: ProposeError, address: impl Fn(NodeId) -> Option<String>) -> Self {
        match error {
            ProposeError::NotLeader { leader } => ApiError::NotLeader {
                leader,
                address: leader.and_then(address),
            },
            ProposeError::Membership(e) => ApiError::invalid(e.to_string()),
            ProposeError::NotAVoter(_) => ApiError::invalid(error.to_string()),
            ProposeError::TransferInProgress(to) => ApiError::Transferring { to },
            other => ApiError::FailedPrecondition(other.to_string()),
        }
    }

    /// The gRPC status code the client API serves this error as.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotLeader { .. }
            | ApiError::Transferring { .. }
            | ApiError::Unavailable(_)
            | ApiError::ShuttingDown => Code::Unavailable,
            ApiError::Compacted { .. } | ApiError::FutureRevision { .. } => Code::OutOfRange,
            ApiError::WatchLagged { .. } => Code::ResourceExhausted,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::OutcomeUnknown(_) => Code::Unknown,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Internal(_) => Code::Internal,
            ApiError::Etcd { code, .. } | ApiError::Remote { code, .. } => *code,
        }
    }

    /// Whether the same request may succeed if sent again after a moment: the cluster was
    /// between leaders, or busy. A write that failed with [`OutcomeUnknown`](Self::OutcomeUnknown)
    /// or [`DeadlineExceeded`](Self::DeadlineExceeded) may have been applied already, which a
    /// put does not mind and a compare-and-swap does.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::NotLeader { .. }
            | ApiError::Transferring { .. }
            | ApiError::Unavailable(_)
            | ApiError::OutcomeUnknown(_)
            | ApiError::DeadlineExceeded(_) => true,
            ApiError::Remote { code, .. } => matches!(
                code,
                Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown
            ),
            _ => false,
        }
    }
}

impl From<crate::kv::etcd::EtcdFailure> for ApiError {
    fn from(failure: crate::kv::etcd::EtcdFailure) -> Self {
        use crate::kv::etcd::EtcdFailure;
        let (code, message) = match failure {
            EtcdFailure::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
            EtcdFailure::LeaseExists => {
                (Code::FailedPrecondition, "etcdserver: lease already exists")
            }
            EtcdFailure::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
            EtcdFailure::Compacted => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            EtcdFailure::FutureRevision => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
        };
        ApiError::Etcd { code, message }
    }
}

/// Where the leader is, as the end of a "not the leader" message.
fn leader_text(leader: Option<NodeId>, address: &Option<String>) -> String {
    match (leader, address) {
        (Some(id), Some(address)) => format!(" (the leader is node {id} at {address})"),
        (Some(id), None) => format!(" (the leader is node {id})"),
        _ => " and no leader is known right now".to_string(),
    }
}

impl From<crate::kv::KvError> for ApiError {
    fn from(e: crate::kv::KvError) -> Self {
        use crate::kv::KvError;
        match e {
            KvError::Compacted {
                oldest_retained, ..
            } => ApiError::Compacted {
                message: e.to_string(),
                oldest_retained,
            },
            KvError::FutureRevision { requested, current } => {
                ApiError::FutureRevision { requested, current }
            }
            KvError::InvalidContinuation => ApiError::invalid(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// The status of a request that went to the leader over the peer network (a forwarded write,
/// a read index), as an error of this node's API.
impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => {
                let named = status
                    .metadata()
                    .get(LIMIT_METADATA)
                    .and_then(|value| value.to_str().ok());
                let limit = LIMIT_NAMES.into_iter().find(|name| Some(*name) == named);
                ApiError::InvalidArgument { message, limit }
            }
            Code::Unavailable => ApiError::Unavailable(message),
            Code::FailedPrecondition => ApiError::FailedPrecondition(message),
            Code::Unknown => ApiError::OutcomeUnknown(message),
            Code::DeadlineExceeded => ApiError::DeadlineExceeded(message),
            Code::Internal => ApiError::Internal(message),
            code => ApiError::Remote { code, message },
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let ApiError::InvalidArgument {
            limit: Some(limit), ..
        } = &e
        {
            metadata.insert(
                LIMIT_METADATA,
                tonic::metadata::MetadataValue::from_static(limit),
            );
        }
        Status::with_metadata(e.code(), e.to_string(), metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_with_code_message_and_limit() {
        let over = ApiError::over_limit(
            "max_value_bytes",
            "value is 9 bytes, over the limit of 8 bytes (max_value_bytes)",
        );
        let status = Status::from(over.clone());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.metadata().get(LIMIT_METADATA).unwrap(),
            "max_value_bytes"
        );
        assert_eq!(ApiError::from(status), over);
        // The limit is read from the metadata, not guessed from the text.
        let said_only = Status::invalid_argument("over the limit (max_value_bytes)");
        assert_eq!(
            ApiError::from(said_only),
            ApiError::invalid("over the limit (max_value_bytes)")
        );

        let not_leader = ApiError::NotLeader {
            leader: Some(2),
            address: Some("n2:2380".into()),
        };
        assert_eq!(not_leader.code(), Code::Unavailable);
        assert_eq!(
            not_leader.to_string(),
            "this node is not the leader (the leader is node 2 at n2:2380)"
        );
        assert!(not_leader.is_retryable());

        let cancelled = ApiError::from(Status::cancelled("gone"));
        assert_eq!(cancelled.code(), Code::Cancelled);
        assert!(cancelled.is_retryable());
        assert!(!ApiError::ShuttingDown.is_retryable());
    }

    #[test]
    fn compacted_history_names_the_oldest_retained_revision() {
        let e = ApiError::from(crate::kv::KvError::Compacted {
            requested: 3,
            oldest_retained: 7,
        });
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(matches!(
            e,
            ApiError::Compacted {
                oldest_retained: 7,
                ..
            }
        ));
        assert!(e.to_string().contains("oldest retained revision is 7"));
    }

    #[test]
    fn a_transfer_in_progress_is_unavailable_and_worth_retrying() {
        let transferring = ApiError::from_propose(ProposeError::TransferInProgress(3), |_| None);
        assert_eq!(transferring, ApiError::Transferring { to: 3 });
        assert_eq!(transferring.code(), Code::Unavailable);
        assert!(transferring.is_retryable());
        assert_eq!(
            transferring.to_string(),
            "leadership is being transferred to node 3; the request was not applied and may be retried"
        );
    }
}
