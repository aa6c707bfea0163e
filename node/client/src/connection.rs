//! An open channel to one node.

use std::future::Future;

use tonic::transport::Channel;

use crate::dial::Dial;
use crate::endpoint::EndpointAddr;
use crate::error::{ClientError, ConnectFailure};
use crate::proto::admin_client::AdminClient;
use crate::proto::kv_client::KvClient;

/// An open channel to one node, with the dial (timeout, token) every call shares.
#[derive(Debug, Clone)]
pub struct Connection {
    endpoint: EndpointAddr,
    channel: Channel,
    dial: Dial,
}

impl Connection {
    /// Connects to the first endpoint that answers, in the order given (so a user who lists
    /// the local node first talks to it while it is up), or names every endpoint tried and
    /// why it failed.
    pub async fn open_first(endpoints: &[EndpointAddr], dial: &Dial) -> Result<Self, ClientError> {
        let mut failures = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            match Self::open(endpoint, dial).await {
                Ok(connection) => return Ok(connection),
                Err(failure) => failures.push(failure),
            }
        }
        Err(ClientError::NoEndpointReachable { failures })
    }

    /// Connects to one endpoint, waiting at most the dial's timeout.
    pub async fn open(endpoint: &EndpointAddr, dial: &Dial) -> Result<Self, ConnectFailure> {
        let channel = dial.connect(endpoint, None).await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            channel,
            dial: dial.clone(),
        })
    }

    /// The endpoint this connection reached.
    pub fn endpoint(&self) -> &EndpointAddr {
        &self.endpoint
    }

    /// A client of the KV service on this connection.
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    /// A client of the Admin service on this connection.
    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// A request carrying the token and the timeout (see [`Dial::request`]).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.dial.request(message)
    }

    /// Awaits a call, failing with a timeout naming this endpoint when the server is silent.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        let after = self.dial.timeout;
        match tokio::time::timeout(after, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(ClientError::Timeout {
                endpoint: self.endpoint.clone(),
                after,
            }),
        }
    }
}
