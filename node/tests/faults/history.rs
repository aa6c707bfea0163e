//! The record of a run: every client operation, when it was invoked and when it completed (on
//! one monotonic clock shared by the whole test process), and what came of it.

use std::fmt;
use std::time::Instant;

use tonic::{Code, Status};

/// A value written by the workload. Every write writes a value never written before, so a
/// value read names the write it came from.
pub type Value = u64;

/// What a read returned when it was not a value any client writes (not a decimal number).
pub const FOREIGN: Value = u64::MAX;

/// Nanoseconds since the start of the run.
pub type Nanos = u64;

/// An operation whose outcome is unknown may take effect at any time after its invocation:
/// for the checker it completes at infinity.
pub const NEVER: Nanos = u64::MAX;

/// The clock every client and the nemesis read, so that "completed before invoked" between
/// two operations of different clients means what it says.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now(&self) -> Nanos {
        self.0.elapsed().as_nanos() as Nanos
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Linearizable,
    Lease,
    Eventual,
}

/// What a client asked of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Write {
        value: Value,
    },
    /// Compare-and-swap on the value: `expected: None` means "the key is absent".
    Cas {
        expected: Option<Value>,
        new: Value,
    },
    Delete,
    Read {
        policy: Policy,
    },
}

/// What the node answered. Every answer reveals the key's state at the moment the operation
/// took effect (puts and deletes ask for the previous value, a CAS returns the value it
/// compared), which is what lets the checker drop unknown writes nobody observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    Write {
        prev: Option<Value>,
    },
    Cas {
        succeeded: bool,
        current: Option<Value>,
    },
    Delete {
        deleted: bool,
        prev: Option<Value>,
    },
    Read {
        value: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Ret),
    /// Definitely did not take effect.
    Fail(String),
    /// May or may not have taken effect, at any time after the invocation.
    Unknown(String),
}

/// One client operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// Unique in the run; the order of recording.
    pub id: usize,
    pub client: usize,
    /// The node the client talks to.
    pub node: u64,
    pub key: String,
    pub call: Call,
    pub invoke: Nanos,
    /// When the answer came, or when the client stopped waiting for one. The checker lets an
    /// operation with an unknown outcome take effect at any time after its invocation.
    pub complete: Nanos,
    pub outcome: Outcome,
    /// The header revision of a successful answer.
    pub revision: Option<i64>,
    /// How many times the serving node had been started, at invocation and at completion:
    /// equal means the answer came from one lifetime of the process.
    pub lifetime: (u64, u64),
    /// Sent through etcd's v3 API rather than `dengine.v1`.
    pub via_etcd: bool,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    pub fn ret(&self) -> Option<&Ret> {
        match &self.outcome {
            Outcome::Ok(ret) => Some(ret),
            _ => None,
        }
    }

    /// The value this operation would write, if it writes one.
    pub fn written_value(&self) -> Option<Value> {
        match self.call {
            Call::Write { value } => Some(value),
            Call::Cas { new, .. } => Some(new),
            _ => None,
        }
    }

    /// Whether the answer says the write was not applied ("leadership changed before the
    /// request committed; it was not applied"). Kept `Unknown` for the checker, but checked on
    /// its own: such a value must never be observed.
    pub fn claims_not_applied(&self) -> bool {
        matches!(&self.outcome, Outcome::Unknown(m) if m.contains("it was not applied"))
    }

    /// Whether this operation is checked for linearizability: everything except eventual
    /// reads. Lease reads are included: the leader serves them only while a quorum answered
    /// its heartbeats within `lease_ticks`, below the election timeout, so no other leader can
    /// exist meanwhile (the nodes share one machine's clock, so there is no drift to allow for).
    pub fn is_linearizable_kind(&self) -> bool {
        !matches!(
            self.call,
            Call::Read {
                policy: Policy::Eventual
            }
        )
    }
}

/// Sorts a failed request into `Fail` or `Unknown`. Conservative: only refusals that happen
/// before anything is proposed are definite (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`). Every
/// UNAVAILABLE counts as unknown, even "not the leader": with forwarding, the refusal may come
/// after an earlier attempt went through; so does UNKNOWN (a write whose outcome a snapshot
/// superseded).
pub fn classify(status: &Status) -> Outcome {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => Outcome::Fail(message),
        _ => Outcome::Unknown(message),
    }
}

/// A value as the workload encodes it; anything else is [`FOREIGN`].
pub fn parse_value(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&value| value != FOREIGN)
        .unwrap_or(FOREIGN)
}

/// `12.345` (milliseconds since the start), or `∞`.
pub struct Millis(pub Nanos);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            NEVER => write!(f, "∞"),
            nanos => write!(f, "{:.3}", nanos as f64 / 1e6),
        }
    }
}

fn show(value: Option<Value>) -> String {
    match value {
        None => "∅".into(),
        Some(FOREIGN) => "<foreign>".into(),
        Some(value) => value.to_string(),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match &self.call {
            Call::Write { value } => format!("write {value}"),
            Call::Cas { expected, new } => format!("cas {} -> {new}", show(*expected)),
            Call::Delete => "delete".to_string(),
            Call::Read { policy } => format!("read ({policy:?})"),
        };
        let outcome = match &self.outcome {
            Outcome::Ok(Ret::Write { prev }) => format!("ok, prev {}", show(*prev)),
            Outcome::Ok(Ret::Cas { succeeded, current }) => {
                format!("ok, succeeded {succeeded}, current {}", show(*current))
            }
            Outcome::Ok(Ret::Delete { deleted, prev }) => {
                format!("ok, deleted {deleted}, prev {}", show(*prev))
            }
            Outcome::Ok(Ret::Read { value }) => format!("ok, {}", show(*value)),
            Outcome::Fail(why) => format!("FAIL ({why})"),
            Outcome::Unknown(why) => format!("UNKNOWN ({why})"),
        };
        let revision = self.revision.map_or(String::new(), |r| format!(" rev {r}"));
        let call = match self.via_etcd {
            true => format!("{call} (etcd API)"),
            false => call,
        };
        write!(
            f,
            "#{:<6} client {} node {} {:<6} [{} ms .. {} ms] {call} => {outcome}{revision}",
            self.id,
            self.client,
            self.node,
            self.key,
            Millis(self.invoke),
            Millis(self.complete),
        )
    }
}
