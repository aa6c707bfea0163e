//! One file per command: build the request, make the call, render the answer.

mod admin;
mod cas;
mod del;
mod endpoint;
mod fetch;
mod get;
mod member;
mod put;
mod save_into;
mod scan;
mod snapshot;
mod watch;

use bytes::Bytes;

use super::args::{Cli, Command, EndpointCommand, GlobalArgs, MemberCommand, OutputFormat};
use super::error::CliError;
use super::output::emit;
use super::proto::kv_client::KvClient;
use super::Outcome;
use dengine_client::Connection;
use tonic::transport::Channel;

/// Dispatches a parsed command line.
pub async fn execute(cli: Cli) -> Result<Outcome, CliError> {
    let Cli { global, command } = cli;
    match command {
        Command::Put(args) => unary(&global, put::request(&args), put::call, put::render).await,
        Command::Get(args) => get::run(&connect(&global).await?, &global, &args).await,
        Command::Del(args) => unary(&global, del::request(&args), del::call, del::render).await,
        Command::Cas(args) => cas::run(&connect(&global).await?, global.output, &args).await,
        Command::Scan(args) => scan::run(&connect(&global).await?, &global, &args).await,
        Command::Watch(args) => watch::run(&connect(&global).await?, global.output, &args).await,
        Command::Member(MemberCommand::List) => {
            member::list(&connect(&global).await?, global.output).await
        }
        Command::Member(change) => admin::change_membership(&global, change).await,
        Command::MoveLeader(args) => admin::move_leader(&global, args.id).await,
        Command::Snapshot(command) => snapshot::run(&global, command).await,
        // Asks every endpoint, so it connects to each itself.
        Command::Endpoint(EndpointCommand::Status) => endpoint::status(&global).await,
    }
}

/// A unary call of the KV service on the first endpoint that answers: `call` sends the request
/// with the connection's token and deadline, and the answer is printed as `render` writes it.
async fn unary<Request, Response, Sent>(
    global: &GlobalArgs,
    request: Request,
    call: impl FnOnce(KvClient<Channel>, tonic::Request<Request>) -> Sent,
    render: fn(OutputFormat, &Response) -> String,
) -> Result<Outcome, CliError>
where
    Sent: std::future::Future<Output = Answer<Response>>,
{
    let connection = connect(global).await?;
    let response = connection
        .call(call(connection.kv(), connection.request(request)))
        .await?;
    emit(&render(global.output, &response))?;
    Ok(Outcome::Success)
}

async fn connect(global: &GlobalArgs) -> Result<Connection, CliError> {
    Ok(Connection::open_first(&global.endpoints, &global.dial()?).await?)
}

/// What a unary call answers.
type Answer<T> = Result<tonic::Response<T>, tonic::Status>;

/// Command-line text as the bytes the API takes.
fn bytes_of(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}
