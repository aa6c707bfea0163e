//! `snapshot save-into DIR --cluster NAMESPACE/CLUSTER [--keep N]`: a scheduled backup into a
//! directory, as the operator's backup Jobs take them into a PersistentVolumeClaim. The backup
//! streams from the endpoint through the same writer the operator uses for S3
//! (`dengine_client::backups`): named `<prefix><namespace>.<cluster>-<UTC time>.dengine-backup`,
//! checked against the node's checksum before it takes that name (a staging file is renamed),
//! synced to disk, then the cluster's oldest beyond --keep are deleted. A failure leaves no file
//! under a backup's name.

use std::path::Path as FsPath;
use std::sync::Arc;

use dengine_client::backups::{is_unfinished_backup, BackupFailure, Destination, Written};
use dengine_client::Connection;
use object_store::local::LocalFileSystem;
use serde::Serialize;

use super::super::args::{GlobalArgs, SaveIntoArgs};
use super::super::output::{emit, json_line};
use super::super::Outcome;
use super::snapshot::{render, view};
use crate::error::CliError;
use crate::proto::BackupRequest;

/// What `--report-to` receives: `ok` tells which half is filled in.
#[derive(Serialize, Default)]
struct Report {
    ok: bool,
    /// The file, relative to DIR.
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    /// How many backups retention deleted, and the first few of them relative to DIR (the
    /// report must fit the 4 KiB the kubelet keeps of a termination message).
    #[serde(skip_serializing_if = "is_zero")]
    deleted_count: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<String>,
    /// Why retention could not delete the oldest (the backup itself was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_failed: Option<String>,
    /// Why the backup failed: a word for machines and a sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Deleted backups named in the report; the rest are counted.
const DELETED_NAMED: usize = 3;

/// Messages in the report are cut to this many characters.
const MESSAGE_CHARS: usize = 1000;

fn is_zero(count: &usize) -> bool {
    *count == 0
}

fn cut(message: String) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message,
    }
}

pub async fn run(global: &GlobalArgs, args: SaveIntoArgs) -> Result<Outcome, CliError> {
    match save(global, &args).await {
        Ok((written, pruned)) => {
            let (deleted, retention_failed) = match pruned {
                Ok(deleted) => (deleted.iter().map(|p| p.to_string()).collect(), None),
                Err(failure) => (Vec::new(), Some(cut(failure.message))),
            };
            let deleted_count = deleted.len();
            let deleted: Vec<String> = deleted.into_iter().take(DELETED_NAMED).collect();
            write_report(
                &args,
                &Report {
                    ok: true,
                    object: Some(written.path.to_string()),
                    revision: Some(written.header.revision),
                    index: written.header.metadata.as_ref().map(|m| m.index),
                    size_bytes: Some(written.size_bytes),
                    deleted_count,
                    deleted,
                    retention_failed: retention_failed.clone(),
                    ..Report::default()
                },
            )?;
            let file = args.dir.join(written.path.as_ref());
            emit(&render(
                global.output,
                "saved",
                &view(&file, &written.header),
            ))?;
            if let Some(message) = retention_failed {
                eprintln!(
                    "warning: the backup was kept, but deleting the oldest failed: {message}"
                );
            }
            Ok(Outcome::Success)
        }
        Err(failure) => {
            write_report(
                &args,
                &Report {
                    reason: Some(failure.reason),
                    message: Some(cut(failure.message.clone())),
                    ..Report::default()
                },
            )?;
            Err(CliError::Backup {
                dir: args.dir.display().to_string(),
                message: failure.to_string(),
            })
        }
    }
}

type Pruned = Result<Vec<object_store::path::Path>, BackupFailure>;

async fn save(
    global: &GlobalArgs,
    args: &SaveIntoArgs,
) -> Result<(Written, Pruned), BackupFailure> {
    let (namespace, cluster) = &args.cluster;
    let failed = |reason: &'static str| move |message: String| BackupFailure { reason, message };
    let store = LocalFileSystem::new_with_prefix(&args.dir).map_err(|error| {
        failed("DestinationInvalid")(format!("{}: {error}", args.dir.display()))
    })?;
    let destination = Destination::new(
        Arc::new(store),
        args.dir.display().to_string(),
        args.prefix.clone(),
    );
    remove_leftover_staging(&args.dir.join(&args.prefix), namespace, cluster);
    let path = destination.object_for(namespace, cluster, jiff::Timestamp::now());
    let dial = global
        .dial()
        .map_err(|error| failed("SourceFailed")(error.to_string()))?;
    let connection = Connection::open_first(&global.endpoints, &dial)
        .await
        .map_err(|error| failed("SourceFailed")(error.to_string()))?;
    // The request carries the admin token: a backup holds every key.
    let chunks = connection
        .call(
            connection
                .admin()
                .backup(connection.request(BackupRequest {})),
        )
        .await
        .map_err(|error| failed("SourceFailed")(format!("asking for a backup: {error}")))?;
    let written = dengine_client::backups::write_backup(chunks, &destination, path).await?;
    // The store renames a staging file into place but does not sync it: a backup reported
    // written must survive the node's crash.
    sync(&args.dir.join(written.path.as_ref()))
        .map_err(|error| failed("UploadFailed")(format!("syncing the backup: {error}")))?;
    let pruned = match args.keep {
        Some(keep) => {
            destination
                .prune(namespace, cluster, keep as usize, &written.path)
                .await
        }
        None => Ok(Vec::new()),
    };
    Ok((written, pruned))
}

/// Removes what a killed earlier run of this cluster's backups left: the store writes a backup
/// to `<name>#<n>` and renames it when whole, and a process killed in between (its deadline,
/// out of memory, a node lost) leaves that file, which listings skip and so retention never
/// deletes. One backup of a cluster runs at a time, so none of these is in use.
fn remove_leftover_staging(dir: &FsPath, namespace: &str, cluster: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_unfinished_backup(namespace, cluster, &name) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => eprintln!("removed {name}, left by a backup that did not finish"),
                Err(error) => eprintln!("warning: could not remove {name}: {error}"),
            }
        }
    }
}

/// Syncs `file` and the directory holding its name.
fn sync(file: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    match file.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn write_report(args: &SaveIntoArgs, report: &Report) -> Result<(), CliError> {
    match &args.report_to {
        Some(path) => std::fs::write(path, json_line(report)).map_err(CliError::Output),
        None => Ok(()),
    }
}
