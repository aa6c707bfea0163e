//! Where a backup streams from: the leader's admin `Backup` API.

use dengine_proto::v1::BackupChunk;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use super::BackupFailure;
use crate::admin::GrpcMembership;
use crate::observed::NodeId;

/// A backup as a node streams it: a header, then data.
pub type ChunkStream = BoxStream<'static, Result<BackupChunk, tonic::Status>>;

/// How long one backup may take to stream, end to end.
pub const BACKUP_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Opens a node's backup stream.
pub trait BackupSource: Send + Sync {
    /// Asks node `id`, at `endpoint`, for a backup of its state now.
    fn open(
        &self,
        id: NodeId,
        endpoint: &str,
    ) -> BoxFuture<'static, Result<ChunkStream, BackupFailure>>;
}

impl BackupSource for GrpcMembership {
    fn open(
        &self,
        id: NodeId,
        endpoint: &str,
    ) -> BoxFuture<'static, Result<ChunkStream, BackupFailure>> {
        let membership = self.clone();
        let endpoint = endpoint.to_string();
        async move {
            membership
                .backup(id, &endpoint, BACKUP_TIME_LIMIT)
                .await
                .map(StreamExt::boxed)
                .map_err(|error| BackupFailure {
                    reason: "SourceFailed",
                    message: format!("asking node {id} for a backup: {error}"),
                })
        }
        .boxed()
    }
}
