//! `member add|promote|remove` and `move-leader`: changes only the leader makes.
//!
//! The endpoint given is asked who leads; if another node does, the call goes to that node's
//! peer address (where the admin API is served too), with the admin token when one is given.

use serde::Serialize;

use super::super::args::{GlobalArgs, MemberCommand, OutputFormat};
use super::super::error::CliError;
use super::super::output::{emit, json_line};
use super::super::Outcome;
use crate::proto::{
    AddLearnerRequest, MemberRole, MembershipResponse, PromoteLearnerRequest, RemoveMemberRequest,
    StatusRequest, TransferLeadershipRequest,
};
use dengine_client::{Connection, EndpointAddr};

/// A connection to the leader, found through the first reachable endpoint; its requests carry
/// the admin token of `--admin-token-file`, if given.
async fn connect_to_leader(global: &GlobalArgs) -> Result<Connection, CliError> {
    let dial = global.dial()?;
    let first = Connection::open_first(&global.endpoints, &dial).await?;
    let status = first
        .call(first.admin().status(first.request(StatusRequest {})))
        .await?;
    if status.leader_id == 0 {
        return Err(
            tonic::Status::unavailable("no leader is known right now; retry shortly").into(),
        );
    }
    if status.leader_id == status.member_id {
        return Ok(first);
    }
    let address = status
        .members
        .iter()
        .find(|m| m.id == status.leader_id)
        .map(|m| m.peer_address.clone())
        .ok_or_else(|| {
            tonic::Status::unavailable(format!(
                "the leader {} has no known address",
                status.leader_id
            ))
        })?;
    let endpoint = EndpointAddr::parse(&address).map_err(tonic::Status::invalid_argument)?;
    Ok(Connection::open(&endpoint, &dial).await?)
}

#[derive(Serialize)]
struct MemberView {
    id: u64,
    role: &'static str,
    peer_address: String,
}

#[derive(Serialize)]
struct ChangeView {
    index: u64,
    members: Vec<MemberView>,
}

fn render_change(format: OutputFormat, what: &str, response: &MembershipResponse) -> String {
    let members: Vec<MemberView> = response
        .members
        .iter()
        .map(|m| MemberView {
            id: m.id,
            role: match MemberRole::try_from(m.role) {
                Ok(MemberRole::Voter) => "voter",
                Ok(MemberRole::Learner) => "learner",
                _ => "unknown",
            },
            peer_address: m.peer_address.clone(),
        })
        .collect();
    match format {
        OutputFormat::Json => json_line(&ChangeView {
            index: response.index,
            members,
        }),
        OutputFormat::Table => {
            let list = members
                .iter()
                .map(|m| format!("{} ({})", m.id, m.role))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{what} (index {}); members: {list}\n", response.index)
        }
    }
}

pub async fn change_membership(
    global: &GlobalArgs,
    change: MemberCommand,
) -> Result<Outcome, CliError> {
    let leader = connect_to_leader(global).await?;
    let mut admin = leader.admin();
    let (what, response) = match change {
        MemberCommand::List => unreachable!("member list is not a change"),
        MemberCommand::Add { id, peer_address } => {
            let request = leader.request(AddLearnerRequest {
                node_id: id,
                peer_address,
            });
            (
                format!("added learner {id}"),
                leader.call(admin.add_learner(request)).await?,
            )
        }
        MemberCommand::Promote { id, max_lag } => {
            let request = leader.request(PromoteLearnerRequest {
                node_id: id,
                max_lag: max_lag.unwrap_or(0),
            });
            (
                format!("promoted {id} to voter"),
                leader.call(admin.promote_learner(request)).await?,
            )
        }
        MemberCommand::Remove { id, force } => {
            let request = leader.request(RemoveMemberRequest { node_id: id, force });
            (
                format!("removed {id}"),
                leader.call(admin.remove_member(request)).await?,
            )
        }
    };
    emit(&render_change(global.output, &what, &response))?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct LeaderView {
    leader_id: u64,
    term: u64,
}

pub async fn move_leader(global: &GlobalArgs, target: Option<u64>) -> Result<Outcome, CliError> {
    let leader = connect_to_leader(global).await?;
    let request = leader.request(TransferLeadershipRequest {
        target_id: target.unwrap_or(0),
    });
    let response = leader
        .call(leader.admin().transfer_leadership(request))
        .await?;
    let text = match global.output {
        OutputFormat::Json => json_line(&LeaderView {
            leader_id: response.leader_id,
            term: response.term,
        }),
        OutputFormat::Table => format!(
            "leader is now node {} (term {})\n",
            response.leader_id, response.term
        ),
    };
    emit(&text)?;
    Ok(Outcome::Success)
}
