//! Buckets of S3 and S3-compatible stores, as the operator writes backups to them and the
//! `dengine` CLI fetches backups from them: one way to address a bucket, with the same
//! timeouts and retries on both sides.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::error_chain;

/// A bucket and how to reach it.
#[derive(Clone, Debug)]
pub struct S3Bucket<'a> {
    pub bucket: &'a str,
    /// The store's URL, for a store other than AWS S3; AWS's endpoint for `region` when `None`.
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    /// Address the bucket as `<bucket>.<endpoint host>` instead of `<endpoint>/<bucket>`.
    pub virtual_hosted_style: bool,
}

/// Static credentials.
#[derive(Clone)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A client of `at`, with `keys`, or without them the credentials of the environment
/// (`AWS_*` variables, a web identity token, an instance profile). Requests fail over after a
/// few quick retries rather than the store client's default minutes, so that a store that
/// cannot be reached is reported while the reason is fresh; each may take up to
/// `request_timeout` (a part of an upload, a whole download).
pub fn s3_bucket(
    at: &S3Bucket<'_>,
    keys: Option<S3Keys>,
    request_timeout: Duration,
) -> Result<AmazonS3, String> {
    let mut builder = match &keys {
        None => AmazonS3Builder::from_env(),
        Some(_) => AmazonS3Builder::new(),
    }
    .with_bucket_name(at.bucket)
    .with_region(at.region)
    .with_virtual_hosted_style_request(at.virtual_hosted_style)
    .with_retry(RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
    })
    .with_client_options(
        ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(request_timeout),
    );
    if let Some(endpoint) = at.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(keys) = keys {
        builder = builder
            .with_access_key_id(keys.access_key_id)
            .with_secret_access_key(keys.secret_access_key);
        if let Some(token) = keys.session_token {
            builder = builder.with_token(token);
        }
    }
    builder
        .build()
        .map_err(|error| format!("bucket {}: {}", at.bucket, error_chain(&error)))
}
