//! The three systems behind one interface: one request of a given kind on a given connection.

pub mod dengine;
pub mod embedded;
pub mod etcd;

use std::time::Duration;

use bytes::Bytes;
use dengine_client::{Dial, EndpointAddr};
use tonic::transport::Channel;

use crate::mix::Op;

/// What a request left to remember: the key's mod revision after it (writes and CAS), and
/// whether a CAS comparison held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub mod_revision: Option<i64>,
    pub cas_succeeded: Option<bool>,
}

/// A failed request; `kind` is the gRPC code (or the embedded error's code).
#[derive(Debug, Clone)]
pub struct OpError {
    pub kind: String,
    pub message: String,
}

impl OpError {
    pub fn from_status(status: &tonic::Status) -> Self {
        Self {
            kind: format!("{:?}", status.code()),
            message: status.message().to_string(),
        }
    }

    pub fn other(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// One operation of the mix on one key.
pub struct Operation {
    pub op: Op,
    pub key: Bytes,
    pub value: Bytes,
    /// The mod revision a CAS compares against.
    pub expected: i64,
}

impl Operation {
    /// The kind, key, value and expected mod revision.
    pub fn parts(self) -> (Op, Bytes, Bytes, i64) {
        (self.op, self.key, self.value, self.expected)
    }
}

pub enum Target {
    Dengine(dengine::DengineTarget),
    Embedded(Box<embedded::EmbeddedTarget>),
    Etcd(etcd::EtcdTarget),
}

impl Target {
    /// One request on connection `conn` (taken modulo the connection count).
    pub async fn execute(&self, conn: usize, operation: Operation) -> Result<Outcome, OpError> {
        match self {
            Target::Dengine(t) => t.execute(conn, operation).await,
            Target::Embedded(t) => t.execute(operation).await,
            Target::Etcd(t) => t.execute(conn, operation).await,
        }
    }

    /// Why this target cannot run `op`, if it cannot.
    pub fn unsupported(&self, op: Op) -> Option<String> {
        match (self, op) {
            (Target::Etcd(_), Op::LeaseRead) => Some(
                "etcd has no lease-based read: its Range is linearizable (read index) or \
                 serializable (local, may be stale); nothing was run"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The endpoints requests go to.
    pub fn used_endpoints(&self) -> Vec<String> {
        match self {
            Target::Dengine(t) => t.endpoints.clone(),
            Target::Embedded(t) => vec![t.describe()],
            Target::Etcd(t) => t.endpoints.clone(),
        }
    }

    pub fn connections(&self) -> usize {
        match self {
            Target::Dengine(t) => t.kv.len(),
            Target::Embedded(_) => 0,
            Target::Etcd(t) => t.kv.len(),
        }
    }

    /// Stops what the target started (the embedded node).
    pub async fn close(self) -> anyhow::Result<()> {
        match self {
            Target::Embedded(t) => t.close().await,
            _ => Ok(()),
        }
    }
}

/// A connected channel to `host:port` (plain HTTP/2), to d-engine or to etcd alike.
pub async fn connect(endpoint: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let address = EndpointAddr::parse(endpoint)
        .map_err(|reason| anyhow::anyhow!("bad endpoint {endpoint}: {reason}"))?;
    Ok(Dial::new(timeout).connect(&address, None).await?)
}

/// `count` channels, spread round-robin over `endpoints`.
pub async fn channels(
    endpoints: &[String],
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for i in 0..count {
        channels.push(connect(&endpoints[i % endpoints.len()], timeout).await?);
    }
    Ok(channels)
}

/// Which of `members` (endpoint, member id) the requests go to, given the leader's id.
pub fn choose_endpoints(
    members: &[(String, u64)],
    leader: u64,
    read_from: crate::cli::ReadFrom,
) -> anyhow::Result<Vec<String>> {
    use crate::cli::ReadFrom;
    let pick = |want_leader: bool| {
        members
            .iter()
            .find(|(_, id)| (*id == leader) == want_leader)
            .map(|(e, _)| vec![e.clone()])
    };
    match read_from {
        ReadFrom::Any => Ok(members.iter().map(|(e, _)| e.clone()).collect()),
        ReadFrom::Leader => pick(true).ok_or_else(|| {
            anyhow::anyhow!(
                "no endpoint given is the leader (member {leader}); give every member's endpoint"
            )
        }),
        ReadFrom::Follower => pick(false).ok_or_else(|| {
            anyhow::anyhow!("every endpoint given is the leader: give a follower's")
        }),
    }
}

/// Asks every endpoint of `system` for `(leader id, member id)` through `status` until all
/// answer and a leader is known (waiting up to 30 s): each endpoint with its member id, and
/// the leader's id.
pub async fn ask_members<F, Fut>(
    system: &str,
    endpoints: &[String],
    status: F,
) -> anyhow::Result<(Vec<(String, u64)>, u64)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u64, u64)>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut members = Vec::new();
        let mut leader = 0;
        let mut last_error = None;
        for endpoint in endpoints {
            match status(endpoint.clone()).await {
                Ok((leader_id, member_id)) => {
                    members.push((endpoint.clone(), member_id));
                    leader = leader.max(leader_id);
                }
                Err(e) => last_error = Some(e),
            }
        }
        if leader != 0 && members.len() == endpoints.len() {
            return Ok((members, leader));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(last_error
                .unwrap_or_else(|| anyhow::anyhow!("no leader known after 30 s"))
                .context(format!("asking {system} endpoints for their status")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The endpoints to drive, chosen by `read_from` among the members `members` finds, and
/// `connections` channels to them, shared round-robin by the clients.
pub async fn connect_chosen<Fut, C>(
    members: Fut,
    args: &crate::cli::RunArgs,
    timeout: Duration,
    client: impl Fn(tonic::transport::Channel) -> C,
) -> anyhow::Result<(Vec<String>, Vec<C>)>
where
    Fut: std::future::Future<Output = anyhow::Result<(Vec<(String, u64)>, u64)>>,
{
    let (members, leader) = members.await?;
    let endpoints = choose_endpoints(&members, leader, args.read_from)?;
    let channels = channels(&endpoints, args.connections, timeout).await?;
    Ok((endpoints, channels.into_iter().map(client).collect()))
}

/// The largest message a benchmark client sends or accepts: a value of the largest size the
/// mixes use, with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ReadFrom;

    #[test]
    fn endpoints_by_role() {
        let members = vec![("a".to_string(), 1), ("b".into(), 2), ("c".into(), 3)];
        assert_eq!(
            choose_endpoints(&members, 2, ReadFrom::Leader).unwrap(),
            vec!["b"]
        );
        assert_eq!(
            choose_endpoints(&members, 2, ReadFrom::Follower).unwrap(),
            vec!["a"]
        );
        assert_eq!(
            choose_endpoints(&members, 2, ReadFrom::Any).unwrap().len(),
            3
        );
        assert!(choose_endpoints(&members[..1], 2, ReadFrom::Leader).is_err());
        assert!(choose_endpoints(&members[1..2], 2, ReadFrom::Follower).is_err());
    }
}
