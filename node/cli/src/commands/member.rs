//! `member list`: the members in this node's applied configuration.

use serde::Serialize;

use crate::args::OutputFormat;
use crate::error::CliError;
use crate::output::{emit, json_line, Table};
use crate::proto::{Member, MemberListRequest, MemberListResponse, MemberRole};
use crate::Outcome;
use dengine_client::Connection;

pub async fn list(connection: &Connection, format: OutputFormat) -> Result<Outcome, CliError> {
    let mut admin = connection.admin();
    let response = connection
        .call(admin.member_list(connection.request(MemberListRequest {})))
        .await?;
    emit(&render(format, &response))?;
    Ok(Outcome::Success)
}

fn role_name(member: &Member) -> &'static str {
    match MemberRole::try_from(member.role) {
        Ok(MemberRole::Voter) => "voter",
        Ok(MemberRole::Learner) => "learner",
        Ok(MemberRole::Unspecified) | Err(_) => "unknown",
    }
}

#[derive(Serialize)]
struct MemberListView {
    cluster_id: u64,
    /// 0 when the answering node knows no leader.
    leader_id: u64,
    members: Vec<MemberView>,
}

#[derive(Serialize)]
struct MemberView {
    id: u64,
    role: &'static str,
    peer_address: String,
    is_leader: bool,
    /// Known only when the answering node is the leader; 0 otherwise.
    match_index: u64,
    /// Known only when the answering node is the leader; 0 otherwise.
    last_contact_ms: u64,
    /// Known only when the answering node is the leader; 0 otherwise.
    lag: u64,
    /// The answering node's last error reaching this member, while it cannot.
    #[serde(skip_serializing_if = "String::is_empty")]
    connection_error: String,
}

fn render(format: OutputFormat, response: &MemberListResponse) -> String {
    let is_leader = |member: &Member| response.leader_id != 0 && member.id == response.leader_id;
    match format {
        OutputFormat::Table => {
            let mut table = Table::new(["ID", "ROLE", "PEER ADDRESS", "IS LEADER"]);
            for member in &response.members {
                table.push_row(vec![
                    member.id.to_string(),
                    role_name(member).to_string(),
                    member.peer_address.clone(),
                    is_leader(member).to_string(),
                ]);
            }
            table.render()
        }
        OutputFormat::Json => json_line(&MemberListView {
            cluster_id: response.cluster_id,
            leader_id: response.leader_id,
            members: response
                .members
                .iter()
                .map(|member| MemberView {
                    id: member.id,
                    role: role_name(member),
                    peer_address: member.peer_address.clone(),
                    is_leader: is_leader(member),
                    match_index: member.match_index,
                    last_contact_ms: member.last_contact_ms,
                    lag: member.lag,
                    connection_error: member.connection_error.clone(),
                })
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> MemberListResponse {
        let member = |id: u64, role: MemberRole, address: &str| Member {
            id,
            peer_address: address.to_string(),
            role: role.into(),
            match_index: 0,
            last_contact_ms: 0,
            lag: 0,
            connection_error: String::new(),
        };
        MemberListResponse {
            cluster_id: 9,
            leader_id: 2,
            members: vec![
                member(1, MemberRole::Voter, "10.0.0.1:2380"),
                member(2, MemberRole::Voter, "10.0.0.2:2380"),
                member(14, MemberRole::Learner, "10.0.0.14:2380"),
            ],
        }
    }

    #[test]
    fn table_lists_id_role_address_and_leadership() {
        assert_eq!(
            render(OutputFormat::Table, &response()),
            "ID   ROLE      PEER ADDRESS     IS LEADER\n\
             1    voter     10.0.0.1:2380    false\n\
             2    voter     10.0.0.2:2380    true\n\
             14   learner   10.0.0.14:2380   false\n"
        );
    }

    #[test]
    fn no_member_leads_when_the_leader_is_unknown() {
        let mut leaderless = response();
        leaderless.leader_id = 0;
        leaderless.members[0].id = 0;
        assert!(!render(OutputFormat::Table, &leaderless).contains("true"));
    }

    #[test]
    fn json_names_roles_and_the_leader() {
        let view: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &response())).expect("valid JSON");
        assert_eq!(view["leader_id"], 2);
        assert_eq!(view["members"][1]["is_leader"], true);
        assert_eq!(view["members"][2]["role"], "learner");
        assert_eq!(view["members"][2]["peer_address"], "10.0.0.14:2380");
    }
}
