//! Backups to an S3 bucket, which the operator writes as the leader streams them.

use std::sync::Arc;
use std::time::Duration;

use dengine_client::backups::{BackupFailure, Destination};
use dengine_client::s3::{s3_bucket, S3Bucket, S3Keys};

use crate::crd::S3Destination;

/// The bucket `spec` names, with the objects under `prefix` (see [`s3_bucket`] for timeouts
/// and retries), with `keys` or the operator's own environment's credentials.
pub fn s3_destination(
    spec: &S3Destination,
    prefix: String,
    keys: Option<S3Keys>,
) -> Result<Destination, BackupFailure> {
    let bucket = S3Bucket {
        bucket: &spec.bucket,
        endpoint: spec.access.endpoint.as_deref(),
        region: &spec.access.region,
        virtual_hosted_style: spec.access.virtual_hosted_style,
    };
    let store =
        s3_bucket(&bucket, keys, Duration::from_secs(120)).map_err(|message| BackupFailure {
            reason: "DestinationInvalid",
            message,
        })?;
    Ok(Destination::new(
        Arc::new(store),
        format!("s3://{}", spec.bucket),
        prefix,
    ))
}
