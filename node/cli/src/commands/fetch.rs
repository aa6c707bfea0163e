//! `snapshot fetch LOCATION FILE`: a backup from object storage (`s3://BUCKET/KEY`, what the
//! operator's scheduled backups write) or from a file (a backup in a mounted volume) into a file
//! that `node --restore-from` and `node restore` read. The copy goes to `FILE.partial` and takes
//! the name only once the whole file checks out, so a restore never starts from a truncated or
//! damaged backup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dengine_client::error_chain;
use dengine_client::s3::{s3_bucket, S3Bucket};
use futures::StreamExt;
use object_store::ObjectStore;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::super::args::{FetchArgs, GlobalArgs};
use super::super::output::{emit, json_line};
use super::super::Outcome;
use super::snapshot::{render, view, BackupView};
use crate::error::CliError;

/// What `--report-to` receives.
#[derive(Serialize)]
struct Report<'a> {
    location: &'a str,
    /// False when the member joins and nothing was fetched.
    fetched: bool,
    #[serde(flatten)]
    backup: Option<BackupView>,
    file_bytes: Option<u64>,
}

pub async fn run(global: &GlobalArgs, args: FetchArgs) -> Result<Outcome, CliError> {
    let failed = |message: String| CliError::Fetch {
        location: args.location.clone(),
        message,
    };
    if args.joining {
        // The cluster was founded (from this backup, or before this member existed): a file
        // left from the founding only takes space.
        match tokio::fs::remove_file(&args.file).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(failed(format!("removing {}: {error}", args.file.display()))),
        }
        report(&args, None, None)?;
        emit("joining a founded cluster: nothing to fetch\n")?;
        return Ok(Outcome::Success);
    }
    let source = parse_location(&args.location).map_err(failed)?;
    let partial = partial_name(&args.file);
    let downloaded = match source {
        Source::S3 { bucket, key } => {
            let store = store(&args, bucket).map_err(failed)?;
            download(&store, key, &partial).await
        }
        Source::File(from) => copy(from, &partial).await,
    };
    let checked = downloaded.and_then(|bytes| {
        let (header, _) =
            dengine_proto::backup::read(&partial).map_err(|error| error.to_string())?;
        Ok((header, bytes))
    });
    let (header, bytes) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            let _ = std::fs::remove_file(&partial);
            return Err(failed(message));
        }
    };
    std::fs::rename(&partial, &args.file)
        .map_err(|error| failed(format!("naming {}: {error}", args.file.display())))?;
    report(&args, Some(&header), Some(bytes))?;
    emit(&render(
        global.output,
        "fetched",
        &view(&args.file, &header),
    ))?;
    Ok(Outcome::Success)
}

/// Where a backup is fetched from.
#[derive(Debug, PartialEq)]
enum Source<'a> {
    S3 { bucket: &'a str, key: &'a str },
    File(&'a Path),
}

/// `s3://BUCKET/KEY` as its bucket and key; a location without a scheme is a file's path.
fn parse_location(location: &str) -> Result<Source<'_>, String> {
    const FORMS: &str = "a location is s3://BUCKET/KEY or a file's path";
    match location.strip_prefix("s3://") {
        Some(rest) => rest
            .split_once('/')
            .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
            .map(|(bucket, key)| Source::S3 { bucket, key })
            .ok_or_else(|| FORMS.to_string()),
        None if location.contains("://") || location.is_empty() => Err(FORMS.to_string()),
        None => Ok(Source::File(Path::new(location))),
    }
}

/// The bucket, with credentials from the environment (static keys or a role).
fn store(args: &FetchArgs, bucket: &str) -> Result<impl ObjectStore, String> {
    let at = S3Bucket {
        bucket,
        endpoint: args.endpoint.as_deref(),
        region: &args.region,
        virtual_hosted_style: args.virtual_hosted_style,
    };
    s3_bucket(&at, None, Duration::from_secs(600))
}

fn partial_name(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Streams the object into `to`, synced; returns its size.
async fn download(store: &impl ObjectStore, key: &str, to: &Path) -> Result<u64, String> {
    let object = store
        .get(&object_store::path::Path::from(key))
        .await
        .map_err(|error| error_chain(&error))?;
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|error| format!("creating {}: {error}", to.display()))?;
    let mut stream = object.into_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| error_chain(&error))?;
        bytes += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|error| format!("writing {}: {error}", to.display()))?;
    }
    file.sync_all()
        .await
        .map_err(|error| format!("syncing {}: {error}", to.display()))?;
    Ok(bytes)
}

/// Copies the file `from` into `to`, synced; returns its size.
async fn copy(from: &Path, to: &Path) -> Result<u64, String> {
    let bytes = tokio::fs::copy(from, to)
        .await
        .map_err(|error| format!("copying {} to {}: {error}", from.display(), to.display()))?;
    let file = tokio::fs::File::open(to)
        .await
        .map_err(|error| format!("opening {}: {error}", to.display()))?;
    file.sync_all()
        .await
        .map_err(|error| format!("syncing {}: {error}", to.display()))?;
    Ok(bytes)
}

fn report(
    args: &FetchArgs,
    header: Option<&dengine_proto::v1::BackupHeader>,
    file_bytes: Option<u64>,
) -> Result<(), CliError> {
    let Some(path) = &args.report_to else {
        return Ok(());
    };
    let line = json_line(&Report {
        location: &args.location,
        fetched: header.is_some(),
        backup: header.map(|h| view(&args.file, h)),
        file_bytes,
    });
    std::fs::write(path, line).map_err(CliError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_names_a_bucket_and_a_key_or_a_file() {
        assert_eq!(
            parse_location("s3://backups/shop/orders/o.dengine-backup"),
            Ok(Source::S3 {
                bucket: "backups",
                key: "shop/orders/o.dengine-backup"
            })
        );
        assert_eq!(
            parse_location("/backups/shop/o.dengine-backup"),
            Ok(Source::File(Path::new("/backups/shop/o.dengine-backup")))
        );
        for bad in [
            "",
            "pvc://claim/key",
            "s3://backups",
            "s3://backups/",
            "s3:///key",
            "http://x/y",
        ] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }
}
