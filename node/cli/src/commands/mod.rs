//! One file per command: build the request, make the call, render the answer.

mod admin;
mod cas;
mod del;
mod endpoint;
mod get;
mod member;
mod put;
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
        Command::Put(args) => {
            let request = put::request(&args);
            let call = |mut kv: KvClient<Channel>, request| async move { kv.put(request).await };
            unary(
                &connect(&global).await?,
                global.output,
                request,
                call,
                put::render,
            )
            .await
        }
        Command::Get(args) => get::run(&connect(&global).await?, &global, &args).await,
        Command::Del(args) => {
            let request = del::request(&args);
            let call = |mut kv: KvClient<Channel>, request| async move { kv.delete(request).await };
            unary(
                &connect(&global).await?,
                global.output,
                request,
                call,
                del::render,
            )
            .await
        }
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

/// A unary call of the KV service: `call` sends the request with the connection's token and
/// deadline, and the answer is printed as `render` writes it in `format`.
async fn unary<Request, Response, Answer>(
    connection: &Connection,
    format: OutputFormat,
    request: Request,
    call: impl FnOnce(KvClient<Channel>, tonic::Request<Request>) -> Answer,
    render: fn(OutputFormat, &Response) -> String,
) -> Result<Outcome, CliError>
where
    Answer: std::future::Future<Output = Result<tonic::Response<Response>, tonic::Status>>,
{
    let response = connection
        .call(call(connection.kv(), connection.request(request)))
        .await?;
    emit(&render(format, &response))?;
    Ok(Outcome::Success)
}

async fn connect(global: &GlobalArgs) -> Result<Connection, CliError> {
    Ok(Connection::open_first(&global.endpoints, &global.dial()?).await?)
}

/// Command-line text as the bytes the API takes.
fn bytes_of(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}
