//! `snapshot save|save-into|status|fetch`: backups of a cluster's state. Restoring one into a data directory
//! is the node binary's job (`node restore`, as `etcdutl snapshot restore`): it writes the
//! node's storage, which this network client does not link.

use serde::Serialize;
use tokio_stream::StreamExt;

use super::super::args::{GlobalArgs, OutputFormat, SnapshotCommand};
use super::super::output::{emit, json_line};
use super::super::Outcome;
use crate::error::{invalid, CliError};
use crate::proto::{BackupHeader, BackupRequest};
use dengine_client::Connection;

#[derive(Serialize)]
pub(super) struct BackupView {
    file: String,
    cluster_id: String,
    index: u64,
    term: u64,
    /// The key-value revision the backup holds; 0 for backups written before it was recorded.
    revision: i64,
    bytes: u64,
}

pub(super) fn view(file: &std::path::Path, header: &BackupHeader) -> BackupView {
    let meta = header.metadata.clone().unwrap_or_default();
    BackupView {
        file: file.display().to_string(),
        cluster_id: format!("{:x}", header.cluster_id),
        index: meta.index,
        term: meta.term,
        revision: header.revision,
        bytes: header.data_bytes,
    }
}

pub(super) fn render(format: OutputFormat, what: &str, view: &BackupView) -> String {
    match format {
        OutputFormat::Json => json_line(view),
        OutputFormat::Table => format!(
            "{what} {}: cluster {}, index {}, term {}, revision {}, {} bytes\n",
            view.file, view.cluster_id, view.index, view.term, view.revision, view.bytes
        ),
    }
}

pub async fn run(global: &GlobalArgs, command: SnapshotCommand) -> Result<Outcome, CliError> {
    match command {
        SnapshotCommand::Save { file } => {
            let connection = Connection::open_first(&global.endpoints, &global.dial()?).await?;
            // The request carries the admin token: a backup holds every key.
            let mut stream = connection
                .call(
                    connection
                        .admin()
                        .backup(connection.request(BackupRequest {})),
                )
                .await?;
            let mut header = None;
            let mut data = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if let Some(h) = chunk.header {
                    header = Some(h);
                }
                data.extend_from_slice(&chunk.data);
            }
            let header = header.ok_or_else(|| invalid("the node sent no backup header"))?;
            if !dengine_proto::backup::matches(&header, &data) {
                return Err(invalid(
                    "the backup arrived incomplete or damaged; nothing was written",
                ));
            }
            dengine_proto::backup::write(&file, &header, &data)?;
            emit(&render(global.output, "saved", &view(&file, &header)))?;
        }
        SnapshotCommand::SaveInto(args) => return super::save_into::run(global, args).await,
        SnapshotCommand::Fetch(args) => return super::fetch::run(global, args).await,
        SnapshotCommand::Status { file } => {
            let (header, _) =
                dengine_proto::backup::read(&file).map_err(|e| invalid(e.to_string()))?;
            emit(&render(global.output, "backup", &view(&file, &header)))?;
        }
    }
    Ok(Outcome::Success)
}
