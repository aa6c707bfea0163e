//! `endpoint status`: asks every endpoint, concurrently, for its view of the cluster.
//!
//! An endpoint that cannot be reached or fails is a row with its error, not the end of the
//! command: the point is to see which nodes are healthy. Any failed row makes the exit status 1.

use serde::Serialize;

use crate::args::{GlobalArgs, OutputFormat};
use crate::error::CliError;
use crate::output::{emit, json_line, Table};
use crate::proto::{RaftRole, StatusRequest, StatusResponse};
use crate::Outcome;
use dengine_client::{Connection, EndpointAddr};

pub async fn status(global: &GlobalArgs) -> Result<Outcome, CliError> {
    let probes = global
        .endpoints
        .iter()
        .map(|endpoint| probe(endpoint, global));
    let rows = futures::future::join_all(probes).await;
    emit(&render(global.output, &rows))?;
    let failed = rows.iter().filter(|row| row.status.is_err()).count();
    if failed > 0 {
        return Err(CliError::EndpointsFailed {
            failed,
            total: rows.len(),
        });
    }
    Ok(Outcome::Success)
}

/// One endpoint's answer, or why there was none.
struct EndpointStatus {
    endpoint: EndpointAddr,
    status: Result<StatusResponse, String>,
}

async fn probe(endpoint: &EndpointAddr, global: &GlobalArgs) -> EndpointStatus {
    let status = async {
        let dial = global.dial().map_err(|error| error.to_string())?;
        let connection = Connection::open(endpoint, &dial)
            .await
            .map_err(|failure| failure.reason)?;
        let mut admin = connection.admin();
        connection
            .call(admin.status(connection.request(StatusRequest {})))
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    EndpointStatus {
        endpoint: endpoint.clone(),
        status,
    }
}

fn role_name(status: &StatusResponse) -> &'static str {
    match RaftRole::try_from(status.role) {
        Ok(RaftRole::Follower) => "follower",
        Ok(RaftRole::PreCandidate) => "pre-candidate",
        Ok(RaftRole::Candidate) => "candidate",
        Ok(RaftRole::Leader) => "leader",
        Ok(RaftRole::Learner) => "learner",
        Ok(RaftRole::Unspecified) | Err(_) => "unknown",
    }
}

#[derive(Serialize)]
struct EndpointStatusView {
    endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct StatusView {
    cluster_id: u64,
    member_id: u64,
    /// 0 when the node knows no leader.
    leader_id: u64,
    term: u64,
    role: &'static str,
    commit_index: u64,
    applied_index: u64,
    last_log_index: u64,
    revision: i64,
    snapshot_index: u64,
    version: String,
}

impl StatusView {
    fn new(status: &StatusResponse) -> Self {
        Self {
            cluster_id: status.cluster_id,
            member_id: status.member_id,
            leader_id: status.leader_id,
            term: status.term,
            role: role_name(status),
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            last_log_index: status.last_log_index,
            revision: status.revision,
            snapshot_index: status.snapshot_index,
            version: status.version.clone(),
        }
    }
}

const COLUMNS: [&str; 10] = [
    "ENDPOINT", "ID", "LEADER", "TERM", "ROLE", "COMMIT", "APPLIED", "REVISION", "VERSION",
    "ERRORS",
];

fn render(format: OutputFormat, rows: &[EndpointStatus]) -> String {
    match format {
        OutputFormat::Table => {
            let mut table = Table::new(COLUMNS);
            for row in rows {
                table.push_row(table_row(row));
            }
            table.render()
        }
        OutputFormat::Json => {
            let views: Vec<EndpointStatusView> = rows
                .iter()
                .map(|row| EndpointStatusView {
                    endpoint: row.endpoint.to_string(),
                    status: row.status.as_ref().ok().map(StatusView::new),
                    error: row.status.as_ref().err().cloned(),
                })
                .collect();
            json_line(&views)
        }
    }
}

fn table_row(row: &EndpointStatus) -> Vec<String> {
    let endpoint = row.endpoint.to_string();
    match &row.status {
        Ok(status) => vec![
            endpoint,
            status.member_id.to_string(),
            match status.leader_id {
                0 => "none".to_string(),
                leader => leader.to_string(),
            },
            status.term.to_string(),
            role_name(status).to_string(),
            status.commit_index.to_string(),
            status.applied_index.to_string(),
            status.revision.to_string(),
            or_dash(&status.version),
            String::new(),
        ],
        Err(error) => {
            let mut cells = vec![endpoint];
            cells.extend(std::iter::repeat_n("-".to_string(), COLUMNS.len() - 2));
            cells.push(error.clone());
            cells
        }
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(endpoint: &str, member_id: u64, role: RaftRole) -> EndpointStatus {
        EndpointStatus {
            endpoint: EndpointAddr::parse(endpoint).expect("valid endpoint"),
            status: Ok(StatusResponse {
                cluster_id: 9,
                member_id,
                leader_id: 1,
                term: 3,
                role: role.into(),
                commit_index: 120,
                applied_index: 119,
                last_log_index: 121,
                revision: 57,
                snapshot_index: 100,
                version: "0.1.0".to_string(),
                members: Vec::new(),
                awaiting_admission: false,
            }),
        }
    }

    fn unreachable(endpoint: &str) -> EndpointStatus {
        EndpointStatus {
            endpoint: EndpointAddr::parse(endpoint).expect("valid endpoint"),
            status: Err("tcp connect error: Connection refused (os error 111)".to_string()),
        }
    }

    #[test]
    fn table_has_a_row_per_endpoint_including_failures() {
        let rows = [
            healthy("10.0.0.1:2379", 1, RaftRole::Leader),
            unreachable("10.0.0.2:2379"),
        ];
        assert_eq!(
            render(OutputFormat::Table, &rows),
            "ENDPOINT        ID   LEADER   TERM   ROLE     COMMIT   APPLIED   REVISION   VERSION   ERRORS\n\
             10.0.0.1:2379   1    1        3      leader   120      119       57         0.1.0\n\
             10.0.0.2:2379   -    -        -      -        -        -         -          -         \
             tcp connect error: Connection refused (os error 111)\n"
        );
    }

    #[test]
    fn json_is_an_array_with_status_or_error() {
        let rows = [
            healthy("10.0.0.1:2379", 1, RaftRole::PreCandidate),
            unreachable("10.0.0.2:2379"),
        ];
        let view: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &rows)).expect("valid JSON");
        assert_eq!(view[0]["endpoint"], "10.0.0.1:2379");
        assert_eq!(view[0]["status"]["role"], "pre-candidate");
        assert_eq!(view[0]["status"]["applied_index"], 119);
        assert!(view[0].get("error").is_none());
        assert_eq!(view[1]["endpoint"], "10.0.0.2:2379");
        assert!(view[1].get("status").is_none());
        assert!(view[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")));
    }
}
