//! The `AgentService` gRPC server: checks identity, version and `Hello`, then hands the stream
//! to the hub (PROTOCOL.md §2).

use std::pin::Pin;

use cairn_proto::agent::v1::agent_service_server::{AgentService, AgentServiceServer};
use cairn_proto::agent::v1::{AgentMessage, ControlMessage, Hello, agent_message};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::hub::AgentHub;
use super::session::run_session;
use super::status::{SessionRefusal, error_chain};
use super::version::check_compatible;
use cairn_certs::identity::AgentIdentity;

/// The agent service; every accepted session is registered in the [`AgentHub`].
#[derive(Clone, Debug)]
pub struct AgentGrpc {
    hub: AgentHub,
}

impl AgentGrpc {
    /// A service feeding `hub`.
    pub fn new(hub: AgentHub) -> AgentGrpc {
        AgentGrpc { hub }
    }

    /// The tonic service to add to a server.
    pub fn into_service(self) -> AgentServiceServer<AgentGrpc> {
        AgentServiceServer::new(self)
    }

    async fn accept(
        &self,
        cert_node: Result<String, SessionRefusal>,
        inbound: &mut Streaming<AgentMessage>,
    ) -> Result<(String, Hello), SessionRefusal> {
        let cert_node = cert_node?;
        let timeout = self.hub.config().hello_timeout;
        let first = tokio::time::timeout(timeout, inbound.message())
            .await
            .map_err(|_| SessionRefusal::HelloTimeout {
                seconds: timeout.as_secs(),
            })?
            .map_err(SessionRefusal::Receive)?
            .ok_or(SessionRefusal::ClosedBeforeHello)?;
        let hello = match first.msg {
            Some(agent_message::Msg::Hello(hello)) => hello,
            other => {
                return Err(SessionRefusal::FirstMessageNotHello {
                    got: message_kind(other.as_ref()),
                });
            }
        };
        if hello.node_name != cert_node {
            return Err(SessionRefusal::NodeMismatch {
                cert_node,
                hello_node: hello.node_name,
            });
        }
        check_compatible(&hello.version, &self.hub.config().version)?;
        Ok((cert_node, hello))
    }
}

/// The node named by the connection's client certificate.
fn certificate_node<T>(request: &Request<T>) -> Result<String, SessionRefusal> {
    let certs = request
        .peer_certs()
        .ok_or(SessionRefusal::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(SessionRefusal::NoPeerCertificate)?;
    Ok(AgentIdentity::from_der(leaf)?.node)
}

fn message_kind(msg: Option<&agent_message::Msg>) -> &'static str {
    match msg {
        Some(agent_message::Msg::Hello(_)) => "Hello",
        Some(agent_message::Msg::Accepted(_)) => "Accepted",
        Some(agent_message::Msg::Progress(_)) => "Progress",
        Some(agent_message::Msg::Result(_)) => "Result",
        Some(agent_message::Msg::Heartbeat(_)) => "Heartbeat",
        None => "an empty or unknown message",
    }
}

/// The stream of control messages of one session.
pub type ControlStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentGrpc {
    type SessionStream = ControlStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<ControlStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
        let cert_node = certificate_node(&request);
        let mut inbound = request.into_inner();
        let (node, hello) = match self.accept(cert_node, &mut inbound).await {
            Ok(accepted) => accepted,
            Err(refusal) => {
                tracing::warn!(peer.addr = %peer, "agent refused: {}", error_chain(&refusal));
                return Err(refusal.to_status());
            }
        };
        let opened = match self.hub.open_session(&node, &hello) {
            Ok(opened) => opened,
            Err(refusal) => {
                // Not a fault: agents that reach a follower retry until they find the leader.
                tracing::info!(peer.addr = %peer, agent.node = %node, "agent refused: {}", error_chain(&refusal));
                return Err(refusal.to_status());
            }
        };
        let span = tracing::info_span!(
            "agent_session",
            agent.node = %node,
            session.id = %opened.session_id,
            peer.addr = %peer,
        );
        span.in_scope(|| {
            tracing::info!(
                agent.version = %hello.version,
                actions = hello.actions.len(),
                "agent connected"
            );
        });
        tokio::spawn(
            run_session(
                self.hub.clone(),
                node,
                opened.session_id,
                inbound,
                opened.replaced,
            )
            .instrument(span),
        );
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(opened.outbound).map(|queued| *queued),
        )))
    }
}
