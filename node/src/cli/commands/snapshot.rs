//! `snapshot save|status|restore`: backups of a cluster's state.

use serde::Serialize;
use tokio_stream::StreamExt;

use super::super::args::{GlobalArgs, OutputFormat, SnapshotCommand};
use super::super::connect::Connection;
use super::super::error::CliError;
use super::super::output::{emit, json_line};
use super::super::Outcome;
use crate::proto::{BackupHeader, BackupRequest};
use crate::server::NodeConfig;

#[derive(Serialize)]
struct BackupView {
    file: String,
    cluster_id: String,
    index: u64,
    term: u64,
    bytes: u64,
}

fn view(file: &std::path::Path, header: &BackupHeader) -> BackupView {
    let meta = header.metadata.clone().unwrap_or_default();
    BackupView {
        file: file.display().to_string(),
        cluster_id: format!("{:x}", header.cluster_id),
        index: meta.index,
        term: meta.term,
        bytes: header.data_bytes,
    }
}

fn render(format: OutputFormat, what: &str, view: &BackupView) -> String {
    match format {
        OutputFormat::Json => json_line(view),
        OutputFormat::Table => format!(
            "{what} {}: cluster {}, index {}, term {}, {} bytes\n",
            view.file, view.cluster_id, view.index, view.term, view.bytes
        ),
    }
}

fn invalid(message: String) -> CliError {
    tonic::Status::invalid_argument(message).into()
}

pub async fn run(global: &GlobalArgs, command: SnapshotCommand) -> Result<Outcome, CliError> {
    match command {
        SnapshotCommand::Save { file } => {
            let connection = Connection::open_first(&global.endpoints, &global.dial()?).await?;
            let mut stream = connection
                .call(connection.admin().backup(BackupRequest {}))
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
            let header = header.ok_or_else(|| invalid("the node sent no backup header".into()))?;
            if crate::backup::checksum(&data) != header.checksum
                || data.len() as u64 != header.data_bytes
            {
                return Err(invalid(
                    "the backup arrived incomplete or damaged; nothing was written".into(),
                ));
            }
            crate::backup::write(&file, &header, &data)?;
            emit(&render(global.output, "saved", &view(&file, &header)))?;
        }
        SnapshotCommand::Status { file } => {
            let (header, _) = crate::backup::read(&file).map_err(|e| invalid(e.to_string()))?;
            emit(&render(global.output, "backup", &view(&file, &header)))?;
        }
        SnapshotCommand::Restore {
            file,
            data_dir,
            id,
            initial_cluster,
            cluster_token,
        } => {
            let (header, _) = crate::backup::read(&file).map_err(|e| invalid(e.to_string()))?;
            let config = NodeConfig {
                id,
                data_dir: Some(data_dir.clone()),
                initial_cluster,
                cluster_token,
                restore_from: Some(file.clone()),
                ..NodeConfig::default()
            };
            let cluster_id =
                crate::server::restore_data_dir(&config).map_err(|e| invalid(e.to_string()))?;
            let mut restored = view(&file, &header);
            restored.cluster_id = format!("{cluster_id:x}");
            emit(&render(
                global.output,
                &format!("restored into {} from", data_dir.display()),
                &restored,
            ))?;
        }
    }
    Ok(Outcome::Success)
}
