//! The state machine commands carried in Raft log entries.
//!
//! These bytes live in the log for as long as it is retained and are replayed by every replica,
//! possibly running a newer binary, so field tags must never be reused or renumbered.

use bytes::Bytes;
use prost::Message;

use super::KvError;
use crate::proto::Compare;

/// One state machine command; the payload of a normal Raft log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5")]
    pub op: Option<Op>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    #[prost(message, tag = "1")]
    Put(Put),
    #[prost(message, tag = "2")]
    Delete(Delete),
    #[prost(message, tag = "3")]
    CompareAndSwap(CompareAndSwap),
    #[prost(message, tag = "4")]
    Expire(Expire),
    /// A write of etcd's v3 API, in etcd's own messages.
    #[prost(message, tag = "5")]
    Etcd(super::etcd::EtcdOp),
}

/// Writes a key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Put {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
    /// The deadline, stamped by the leader before proposing (replicas never read their own
    /// clock, or they would disagree); 0 for no TTL.
    #[prost(int64, tag = "3")]
    pub expires_at_unix_ms: i64,
    /// Report the previous key-value in the outcome.
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
}

/// Deletes a key; deleting a missing key changes nothing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Delete {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bool, tag = "2")]
    pub prev_kv: bool,
}

/// Writes a key only when `compare` holds against its current state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompareAndSwap {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// A missing comparison never holds: failing is the safe reading of a malformed request.
    #[prost(message, optional, tag = "2")]
    pub compare: Option<Compare>,
    #[prost(bytes = "bytes", tag = "3")]
    pub new_value: Bytes,
    #[prost(int64, tag = "4")]
    pub expires_at_unix_ms: i64,
}

/// Proposed by the leader when a key's TTL ran out. Deletes the key only if its mod revision is
/// still `mod_revision`: a key rewritten between the leader's decision and this commit (perhaps
/// with a new TTL, or none) must survive.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Expire {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(int64, tag = "2")]
    pub mod_revision: i64,
}

impl Command {
    pub fn put(
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        expires_at_unix_ms: i64,
        prev_kv: bool,
    ) -> Self {
        Self::from(Op::Put(Put {
            key: key.into(),
            value: value.into(),
            expires_at_unix_ms,
            prev_kv,
        }))
    }

    pub fn delete(key: impl Into<Bytes>, prev_kv: bool) -> Self {
        Self::from(Op::Delete(Delete {
            key: key.into(),
            prev_kv,
        }))
    }

    pub fn compare_and_swap(
        key: impl Into<Bytes>,
        compare: Compare,
        new_value: impl Into<Bytes>,
        expires_at_unix_ms: i64,
    ) -> Self {
        Self::from(Op::CompareAndSwap(CompareAndSwap {
            key: key.into(),
            compare: Some(compare),
            new_value: new_value.into(),
            expires_at_unix_ms,
        }))
    }

    pub fn expire(key: impl Into<Bytes>, mod_revision: i64) -> Self {
        Self::from(Op::Expire(Expire {
            key: key.into(),
            mod_revision,
        }))
    }

    /// A write of etcd's v3 API.
    pub fn etcd(request: super::etcd::EtcdRequest) -> Self {
        Self::from(Op::Etcd(super::etcd::EtcdOp {
            request: Some(request),
        }))
    }

    /// The bytes to put in a Raft log entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Reads a command from a Raft log entry.
    ///
    /// A command without an operation is rejected rather than applied as a no-op: it comes from
    /// corruption or from a newer binary whose commands this one does not know, and skipping it
    /// would let this replica silently diverge from the others.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KvError> {
        let command = Self::decode(bytes).map_err(|e| KvError::CorruptCommand(e.to_string()))?;
        let known = match &command.op {
            None => false,
            Some(Op::Etcd(etcd)) => etcd.request.is_some(),
            Some(_) => true,
        };
        if !known {
            return Err(KvError::CorruptCommand(
                "no known operation (written by a newer version?)".to_string(),
            ));
        }
        Ok(command)
    }
}

impl From<Op> for Command {
    fn from(op: Op) -> Self {
        Self { op: Some(op) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::compare::Target;

    #[test]
    fn every_command_round_trips_through_bytes() {
        let commands = [
            Command::put("k", "v", 1_700_000_000_000, true),
            Command::delete("k", true),
            Command::compare_and_swap(
                "k",
                Compare {
                    target: Some(Target::ModRevision(7)),
                },
                "new",
                0,
            ),
            Command::expire("k", 7),
        ];
        for command in commands {
            assert_eq!(Command::from_bytes(&command.to_bytes()).unwrap(), command);
        }
    }

    #[test]
    fn corrupt_bytes_are_a_clear_error() {
        // A length-delimited field (tag 1) announcing 100 bytes that are not there.
        let err = Command::from_bytes(&[0x0a, 100, 1, 2]).unwrap_err();
        assert!(matches!(err, KvError::CorruptCommand(_)), "{err}");
    }

    #[test]
    fn a_command_without_an_operation_is_rejected() {
        // Empty bytes decode as a Command with no operation; an unknown oneof tag does too.
        assert!(matches!(
            Command::from_bytes(&[]),
            Err(KvError::CorruptCommand(_))
        ));
        assert!(matches!(
            Command::from_bytes(&[0x7a, 0]),
            Err(KvError::CorruptCommand(_))
        ));
        // An etcd write whose request this version does not know.
        assert!(matches!(
            Command::from_bytes(&[0x2a, 2, 0x7a, 0]),
            Err(KvError::CorruptCommand(_))
        ));
    }
}
