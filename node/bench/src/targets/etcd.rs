//! etcd's v3 gRPC API (`proto/third_party/etcd`): Put, Range (linearizable by default,
//! serializable for eventual reads) and Txn for compare-and-swap.

use std::time::Duration;

use tonic::transport::Channel;

use super::{connect, connect_chosen, OpError, Operation, Outcome, MAX_MESSAGE_BYTES};
use crate::cli::RunArgs;
use crate::etcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::etcd_proto::etcdserverpb::kv_client::KvClient;
use crate::etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::etcd_proto::etcdserverpb::request_op::Request;
use crate::etcd_proto::etcdserverpb::response_op::Response;
use crate::etcd_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest,
};
use crate::mix::Op;

pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    pub kv: Vec<KvClient<Channel>>,
}

/// The leader's id as `endpoint` sees it, and that endpoint's own member id.
pub async fn status(endpoint: &str) -> anyhow::Result<(u64, u64)> {
    let mut maintenance = MaintenanceClient::new(connect(endpoint, Duration::from_secs(5)).await?);
    let status = maintenance.status(StatusRequest {}).await?.into_inner();
    let member = status.header.map_or(0, |h| h.member_id);
    Ok((status.leader, member))
}

pub async fn members(endpoints: &[String]) -> anyhow::Result<(Vec<(String, u64)>, u64)> {
    super::ask_members("etcd", endpoints, |endpoint| async move {
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

impl EtcdTarget {
    pub async fn connect(args: &RunArgs, timeout: Duration) -> anyhow::Result<Self> {
        let (endpoints, kv) =
            connect_chosen(members(&args.endpoints), args, timeout, kv_client).await?;
        Ok(Self { endpoints, kv })
    }

    pub async fn execute(&self, conn: usize, operation: Operation) -> Result<Outcome, OpError> {
        let (op, key, value, expected) = operation.parts();
        let mut kv = self.kv[conn % self.kv.len()].clone();
        let range = |serializable: bool| RangeRequest {
            key: key.to_vec(),
            serializable,
            ..Default::default()
        };
        let result = match op {
            Op::Write => kv
                .put(PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    ..Default::default()
                })
                .await
                .map(|r| Outcome {
                    mod_revision: r.into_inner().header.map(|h| h.revision),
                    cas_succeeded: None,
                }),
            Op::LinearizableRead => kv.range(range(false)).await.map(|_| Outcome::default()),
            Op::EventualRead => kv.range(range(true)).await.map(|_| Outcome::default()),
            Op::LeaseRead => {
                return Err(OpError::other(
                    "Unsupported",
                    "etcd has no lease-based read",
                ))
            }
            Op::Cas => kv
                .txn(TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Mod as i32,
                        key: key.to_vec(),
                        target_union: Some(TargetUnion::ModRevision(expected)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: key.to_vec(),
                            value: value.to_vec(),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(Request::RequestRange(range(false))),
                    }],
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let mod_revision = if r.succeeded {
                        r.header.map(|h| h.revision)
                    } else {
                        let current = r.responses.into_iter().find_map(|op| match op.response {
                            Some(Response::ResponseRange(range)) => {
                                Some(range.kvs.first().map_or(0, |kv| kv.mod_revision))
                            }
                            _ => None,
                        });
                        Some(current.unwrap_or(0))
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
