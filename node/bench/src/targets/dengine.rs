//! d-engine's gRPC client API (`proto/dengine/v1/kv.proto`), through the node crate's own
//! generated client.

use std::time::Duration;

use dengine::proto::admin_client::AdminClient;
use dengine::proto::compare::Target as CompareTarget;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{CompareAndSwapRequest, GetRequest, PutRequest, ReadPolicy, StatusRequest};
use tonic::transport::Channel;

use super::{connect, connect_chosen, OpError, Operation, Outcome, MAX_MESSAGE_BYTES};
use crate::cli::RunArgs;
use crate::mix::Op;

pub struct DengineTarget {
    pub endpoints: Vec<String>,
    pub kv: Vec<KvClient<Channel>>,
}

/// The leader's id as `endpoint` sees it, and that endpoint's own member id.
pub async fn status(endpoint: &str) -> anyhow::Result<(u64, u64)> {
    let mut admin = AdminClient::new(connect(endpoint, Duration::from_secs(5)).await?);
    let status = admin.status(StatusRequest {}).await?.into_inner();
    Ok((status.leader_id, status.member_id))
}

/// Asks every endpoint who leads (waiting up to 30 s for a leader to be known).
pub async fn members(endpoints: &[String]) -> anyhow::Result<(Vec<(String, u64)>, u64)> {
    super::ask_members("d-engine", endpoints, |endpoint| async move {
        status(&endpoint).await
    })
    .await
}

/// A KV client for the benchmark's largest messages.
pub fn kv_client(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

impl DengineTarget {
    pub async fn connect(args: &RunArgs, timeout: Duration) -> anyhow::Result<Self> {
        let (endpoints, kv) =
            connect_chosen(members(&args.endpoints), args, timeout, kv_client).await?;
        Ok(Self { endpoints, kv })
    }

    pub async fn execute(&self, conn: usize, operation: Operation) -> Result<Outcome, OpError> {
        let (op, key, value, expected) = operation.parts();
        let mut kv = self.kv[conn % self.kv.len()].clone();
        let get = |policy: ReadPolicy| GetRequest {
            key: key.clone(),
            read_policy: policy as i32,
            ..Default::default()
        };
        let result = match op {
            Op::Write => kv
                .put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await
                .map(|r| Outcome {
                    mod_revision: r.into_inner().header.map(|h| h.revision),
                    cas_succeeded: None,
                }),
            Op::LinearizableRead => kv
                .get(get(ReadPolicy::Linearizable))
                .await
                .map(|_| Outcome::default()),
            Op::LeaseRead => kv
                .get(get(ReadPolicy::Lease))
                .await
                .map(|_| Outcome::default()),
            Op::EventualRead => kv
                .get(get(ReadPolicy::Eventual))
                .await
                .map(|_| Outcome::default()),
            Op::Cas => kv
                .compare_and_swap(CompareAndSwapRequest {
                    key,
                    compare: Some(dengine::proto::Compare {
                        target: Some(CompareTarget::ModRevision(expected)),
                    }),
                    new_value: value,
                    ttl_ms: 0,
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let mod_revision = if r.succeeded {
                        r.header.map(|h| h.revision)
                    } else {
                        Some(r.current.map_or(0, |kv| kv.mod_revision))
                    };
                    Outcome {
                        mod_revision,
                        cas_succeeded: Some(r.succeeded),
                    }
                }),
        };
        result.map_err(|s| OpError::from_status(&s))
    }
}
