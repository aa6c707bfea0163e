//! One write vocabulary: what a client asks to write ([`WriteRequest`]) and what it gets back
//! ([`WriteOutcome`]), the same on every path: the gRPC service, an embedded application, a
//! write a follower forwarded to the leader. Protobuf appears only at the edges: the
//! conversions to and from the forwarding messages below, and the Kv service's own.
//!
//! A request is checked against the limits here, once, on the node that received it (a
//! forwarded one is checked again by the leader, whose limits may differ); it becomes the
//! state machine's [`Command`] here; and the state machine's outcome becomes the answer here.

use bytes::Bytes;
use prost::Message as _;

use super::limits::Limits;
use super::vocabulary::{
    ttl_from_ms, ttl_ms, ApiError, Compare, CompareAndSwapOptions, CompareAndSwapResponse,
    DeleteOptions, DeleteResponse, Header, PutOptions, PutResponse,
};
use crate::kv::command::Op;
use crate::kv::etcd::{EtcdAnswer, EtcdOp, EtcdRequest};
use crate::kv::{Command, CommandOutcome};
use crate::proto;
use crate::proto::forward_write_request::Request as WireRequest;
use crate::proto::forward_write_response::Response as WireResponse;

/// A write, as a client asked for it.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRequest {
    Put {
        key: Bytes,
        value: Bytes,
        options: PutOptions,
    },
    Delete {
        key: Bytes,
        options: DeleteOptions,
    },
    CompareAndSwap {
        key: Bytes,
        compare: Compare,
        new_value: Bytes,
        options: CompareAndSwapOptions,
    },
    /// A write of etcd's v3 API, in etcd's own request message (checked by the etcd service).
    Etcd(EtcdRequest),
}

/// What a write did, with the header of the state it was applied at.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Put(PutResponse),
    Delete(DeleteResponse),
    CompareAndSwap(CompareAndSwapResponse),
    /// etcd's answer, and the header of the state it was applied at (the etcd service makes
    /// etcd's headers from it).
    Etcd {
        header: Header,
        answer: EtcdAnswer,
    },
}

/// An etcd write's name in metrics.
pub fn etcd_operation(request: &EtcdRequest) -> &'static str {
    match request {
        EtcdRequest::Put(_) => "etcd_put",
        EtcdRequest::DeleteRange(_) => "etcd_delete_range",
        EtcdRequest::Txn(_) => "etcd_txn",
        EtcdRequest::Compact(_) => "etcd_compact",
        EtcdRequest::LeaseGrant(_) => "etcd_lease_grant",
        EtcdRequest::LeaseRevoke(_) => "etcd_lease_revoke",
        EtcdRequest::LeaseCheckpoint(_) => "etcd_lease_checkpoint",
    }
}

/// The response of one kind of write, taken out of a [`WriteOutcome`]: a caller that sent a
/// put gets a [`PutResponse`] back, and anything else comes back as the `Err`.
macro_rules! response_of_kind {
    ($kind:ident, $response:ty) => {
        impl TryFrom<WriteOutcome> for $response {
            type Error = WriteOutcome;

            fn try_from(outcome: WriteOutcome) -> Result<Self, WriteOutcome> {
                match outcome {
                    WriteOutcome::$kind(response) => Ok(response),
                    other => Err(other),
                }
            }
        }
    };
}

response_of_kind!(Put, PutResponse);
response_of_kind!(Delete, DeleteResponse);
response_of_kind!(CompareAndSwap, CompareAndSwapResponse);

impl WriteRequest {
    /// The operation's name in metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            WriteRequest::Put { .. } => "put",
            WriteRequest::Delete { .. } => "delete",
            WriteRequest::CompareAndSwap { .. } => "compare_and_swap",
            WriteRequest::Etcd(request) => etcd_operation(request),
        }
    }

    /// Refuses a request over the node's limits, naming the limit.
    pub fn check(&self, limits: &Limits) -> Result<(), ApiError> {
        match self {
            WriteRequest::Delete { key, .. } => limits.check_key(key),
            // The etcd service checks its requests in etcd's terms before they get here.
            WriteRequest::Etcd(_) => Ok(()),
            WriteRequest::Put { key, value, .. }
            | WriteRequest::CompareAndSwap {
                key,
                new_value: value,
                ..
            } => {
                limits.check_request(self.encoded_len())?;
                limits.check_key(key)?;
                limits.check_value(value)
            }
        }
    }

    /// The size of the request as a client sends it (the gRPC message, encoded).
    fn encoded_len(&self) -> usize {
        match self.to_wire() {
            WireRequest::Put(put) => put.encoded_len(),
            WireRequest::Delete(delete) => delete.encoded_len(),
            WireRequest::CompareAndSwap(cas) => cas.encoded_len(),
            WireRequest::Etcd(encoded) => encoded.len(),
        }
    }

    /// The state machine command, with TTL deadlines stamped from `now_unix_ms`, the leader's
    /// clock (replicas never read their own).
    pub fn command(&self, now_unix_ms: i64) -> Command {
        let expires_at = |ttl: Option<std::time::Duration>| match ttl_ms(ttl) {
            0 => 0,
            ttl => now_unix_ms.saturating_add(ttl.min(i64::MAX as u64) as i64),
        };
        match self {
            WriteRequest::Put {
                key,
                value,
                options,
            } => Command::put(
                key.clone(),
                value.clone(),
                expires_at(options.ttl),
                options.prev_kv,
            ),
            WriteRequest::Delete { key, options } => Command::delete(key.clone(), options.prev_kv),
            WriteRequest::Etcd(request) => Command::from(Op::Etcd(EtcdOp {
                request: Some(request.clone()),
            })),
            WriteRequest::CompareAndSwap {
                key,
                compare,
                new_value,
                options,
            } => Command::compare_and_swap(
                key.clone(),
                compare.clone().into(),
                new_value.clone(),
                expires_at(options.ttl),
            ),
        }
    }

    /// As a follower forwards it to the leader.
    pub fn to_wire(&self) -> WireRequest {
        match self.clone() {
            WriteRequest::Put {
                key,
                value,
                options,
            } => WireRequest::Put(proto::PutRequest {
                key,
                value,
                ttl_ms: ttl_ms(options.ttl),
                prev_kv: options.prev_kv,
            }),
            WriteRequest::Delete { key, options } => WireRequest::Delete(proto::DeleteRequest {
                key,
                prev_kv: options.prev_kv,
            }),
            WriteRequest::CompareAndSwap {
                key,
                compare,
                new_value,
                options,
            } => WireRequest::CompareAndSwap(proto::CompareAndSwapRequest {
                key,
                compare: Some(compare.into()),
                new_value,
                ttl_ms: ttl_ms(options.ttl),
            }),
            WriteRequest::Etcd(request) => WireRequest::Etcd(
                EtcdOp {
                    request: Some(request),
                }
                .encode_to_vec()
                .into(),
            ),
        }
    }

    /// A request as it arrived over the wire (from a client or a follower).
    pub fn from_wire(request: WireRequest) -> Result<Self, ApiError> {
        Ok(match request {
            WireRequest::Put(put) => WriteRequest::Put {
                key: put.key,
                value: put.value,
                options: PutOptions {
                    ttl: ttl_from_ms(put.ttl_ms),
                    prev_kv: put.prev_kv,
                },
            },
            WireRequest::Delete(delete) => WriteRequest::Delete {
                key: delete.key,
                options: DeleteOptions {
                    prev_kv: delete.prev_kv,
                },
            },
            WireRequest::CompareAndSwap(cas) => WriteRequest::CompareAndSwap {
                key: cas.key,
                compare: Compare::from_proto(cas.compare).ok_or_else(|| {
                    ApiError::invalid("compare must name a value, a mod_revision or absent")
                })?,
                new_value: cas.new_value,
                options: CompareAndSwapOptions {
                    ttl: ttl_from_ms(cas.ttl_ms),
                },
            },
            WireRequest::Etcd(encoded) => {
                let op = EtcdOp::decode(encoded.as_ref())
                    .map_err(|e| ApiError::invalid(format!("a forwarded etcd write: {e}")))?;
                WriteRequest::Etcd(
                    op.request.ok_or_else(|| {
                        ApiError::invalid("a forwarded etcd write without a request")
                    })?,
                )
            }
        })
    }
}

impl WriteOutcome {
    /// The answer to a write whose command had `outcome`; `header` makes the header of the
    /// state at a revision. `None` for the outcome of an expiry, which the leader proposes
    /// itself and no client waits on.
    pub fn from_applied(outcome: CommandOutcome, header: impl Fn(i64) -> Header) -> Option<Self> {
        Some(match outcome {
            CommandOutcome::Put { revision, prev_kv } => WriteOutcome::Put(PutResponse {
                header: header(revision),
                prev_kv,
            }),
            CommandOutcome::Delete {
                revision,
                deleted,
                prev_kv,
            } => WriteOutcome::Delete(DeleteResponse {
                header: header(revision),
                deleted,
                prev_kv,
            }),
            CommandOutcome::CompareAndSwap {
                succeeded,
                revision,
                current,
            } => WriteOutcome::CompareAndSwap(CompareAndSwapResponse {
                header: header(revision),
                succeeded,
                current,
            }),
            CommandOutcome::Etcd {
                revision,
                result: Ok(answer),
            } => WriteOutcome::Etcd {
                header: header(revision),
                answer,
            },
            // A failed etcd write is answered as an error before an outcome is made.
            CommandOutcome::Etcd { result: Err(_), .. } | CommandOutcome::Expire { .. } => {
                return None
            }
        })
    }

    /// As the leader answers a forwarded write.
    pub fn to_wire(&self) -> WireResponse {
        match self.clone() {
            WriteOutcome::Put(r) => WireResponse::Put(proto::PutResponse {
                header: Some(r.header.into()),
                prev_kv: r.prev_kv,
            }),
            WriteOutcome::Delete(r) => WireResponse::Delete(proto::DeleteResponse {
                header: Some(r.header.into()),
                deleted: r.deleted,
                prev_kv: r.prev_kv,
            }),
            WriteOutcome::CompareAndSwap(r) => {
                WireResponse::CompareAndSwap(proto::CompareAndSwapResponse {
                    header: Some(r.header.into()),
                    succeeded: r.succeeded,
                    current: r.current,
                })
            }
            WriteOutcome::Etcd { header, answer } => WireResponse::Etcd(proto::EtcdWriteAnswer {
                header: Some(header.into()),
                answer: answer.encode_to_vec().into(),
            }),
        }
    }

    /// The leader's answer to a forwarded write.
    pub fn from_wire(response: WireResponse) -> Result<Self, ApiError> {
        Ok(match response {
            WireResponse::Put(r) => WriteOutcome::Put(PutResponse {
                header: r.header.unwrap_or_default().into(),
                prev_kv: r.prev_kv,
            }),
            WireResponse::Delete(r) => WriteOutcome::Delete(DeleteResponse {
                header: r.header.unwrap_or_default().into(),
                deleted: r.deleted,
                prev_kv: r.prev_kv,
            }),
            WireResponse::CompareAndSwap(r) => {
                WriteOutcome::CompareAndSwap(CompareAndSwapResponse {
                    header: r.header.unwrap_or_default().into(),
                    succeeded: r.succeeded,
                    current: r.current,
                })
            }
            WireResponse::Etcd(r) => WriteOutcome::Etcd {
                header: r.header.unwrap_or_default().into(),
                answer: EtcdAnswer::decode(r.answer.as_ref()).map_err(|e| {
                    ApiError::Internal(format!(
                        "internal error: the leader's answer to an etcd write: {e}"
                    ))
                })?,
            },
        })
    }

    /// Whether this is the kind of answer `request` gets: a command's outcome always is (it
    /// was made from the request), and so is a leader's answer, unless the leader runs a
    /// different, broken build.
    pub fn answers(&self, request: &WriteRequest) -> bool {
        matches!(
            (request, self),
            (WriteRequest::Put { .. }, WriteOutcome::Put(_))
                | (WriteRequest::Delete { .. }, WriteOutcome::Delete(_))
                | (
                    WriteRequest::CompareAndSwap { .. },
                    WriteOutcome::CompareAndSwap(_)
                )
                | (WriteRequest::Etcd(_), WriteOutcome::Etcd { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_request_bytes: 64,
            max_scan_limit: 10,
        }
    }

    #[test]
    fn every_request_survives_the_wire() {
        let requests = [
            WriteRequest::Put {
                key: "k".into(),
                value: "v".into(),
                options: PutOptions::new()
                    .with_ttl(Duration::from_millis(1500))
                    .with_prev_kv(),
            },
            WriteRequest::Delete {
                key: "k".into(),
                options: DeleteOptions { prev_kv: true },
            },
            WriteRequest::CompareAndSwap {
                key: "k".into(),
                compare: Compare::ModRevision(4),
                new_value: "w".into(),
                options: CompareAndSwapOptions {
                    ttl: Some(Duration::from_secs(2)),
                },
            },
        ];
        for request in requests {
            assert_eq!(WriteRequest::from_wire(request.to_wire()).unwrap(), request);
        }
    }

    #[test]
    fn a_compare_and_swap_without_a_comparison_is_refused() {
        let wire = WireRequest::CompareAndSwap(proto::CompareAndSwapRequest {
            key: "k".into(),
            compare: None,
            new_value: "v".into(),
            ttl_ms: 0,
        });
        let error = WriteRequest::from_wire(wire).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn limits_are_checked_by_name() {
        let over_value = WriteRequest::Put {
            key: "k".into(),
            value: Bytes::from(vec![b'x'; 17]),
            options: PutOptions::new(),
        };
        assert!(matches!(
            over_value.check(&limits()),
            Err(ApiError::InvalidArgument {
                limit: Some("max_value_bytes"),
                ..
            })
        ));
        let empty_key = WriteRequest::Delete {
            key: Bytes::new(),
            options: DeleteOptions::default(),
        };
        assert!(empty_key.check(&limits()).is_err());
    }

    #[test]
    fn a_ttl_becomes_a_deadline_on_the_leaders_clock() {
        let put = WriteRequest::Put {
            key: "k".into(),
            value: "v".into(),
            options: PutOptions::new().with_ttl(Duration::from_secs(3)),
        };
        assert_eq!(put.command(1_000), Command::put("k", "v", 4_000, false));
        let forever = WriteRequest::Put {
            key: "k".into(),
            value: "v".into(),
            options: PutOptions::new(),
        };
        assert_eq!(forever.command(1_000), Command::put("k", "v", 0, false));
    }

    #[test]
    fn outcomes_survive_the_wire_and_answer_their_request() {
        let header = |revision| Header {
            cluster_id: 7,
            member_id: 1,
            revision,
            raft_term: 2,
        };
        let outcome = WriteOutcome::from_applied(
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                revision: 9,
                current: None,
            },
            header,
        )
        .unwrap();
        assert_eq!(WriteOutcome::from_wire(outcome.to_wire()).unwrap(), outcome);
        let cas = WriteRequest::CompareAndSwap {
            key: "k".into(),
            compare: Compare::Absent,
            new_value: "v".into(),
            options: CompareAndSwapOptions::default(),
        };
        assert!(outcome.answers(&cas));
        let delete = WriteRequest::Delete {
            key: "k".into(),
            options: DeleteOptions::default(),
        };
        assert!(!outcome.answers(&delete));
    }
}
