//! Establishing one session: dial over mTLS, send `Hello`, wait for `Welcome`.

use std::time::Duration;

use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{
    AgentMessage, ControlMessage, Hello, Welcome, agent_message, control_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::tls::{ClientTlsError, Dial};

/// Messages queued for the control plane beyond this drop the session: it is not reading,
/// and a fresh `Hello` resynchronises everything.
pub(crate) const OUTBOUND_CAPACITY: usize = 256;

/// Why a session could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP, TLS or HTTP/2 setup failed.
    #[error(transparent)]
    Dial(#[from] ClientTlsError),
    /// The control plane answered the session with an error status.
    #[error("the control plane refused the session: {code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// No `Welcome` in time.
    #[error("no Welcome within {seconds} s")]
    NoWelcome {
        /// The timeout.
        seconds: u64,
    },
    /// The first message was not `Welcome`.
    #[error("the control plane answered Hello with {got} instead of Welcome")]
    UnexpectedFirst {
        /// What came.
        got: &'static str,
    },
    /// The stream ended before `Welcome`.
    #[error("the control plane closed the session before Welcome")]
    ClosedBeforeWelcome,
}

/// An open session.
#[derive(Debug)]
pub(crate) struct Established {
    pub outbound: mpsc::Sender<AgentMessage>,
    pub inbound: Streaming<ControlMessage>,
    pub welcome: Welcome,
}

/// Dials, sends `hello` and waits for `Welcome`.
pub(crate) async fn establish(
    dial: &Dial,
    hello: Hello,
    welcome_timeout: Duration,
) -> Result<Established, ConnectError> {
    let channel = dial.connect().await?;
    let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    // The channel is new and empty: the first message always fits.
    let _ = outbound.try_send(AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    });
    let no_welcome = || ConnectError::NoWelcome {
        seconds: welcome_timeout.as_secs(),
    };
    let refused = |status: tonic::Status| ConnectError::Refused {
        code: status.code(),
        message: status.message().to_owned(),
    };
    let mut client = AgentServiceClient::new(channel);
    let response = tokio::time::timeout(welcome_timeout, client.session(ReceiverStream::new(rx)))
        .await
        .map_err(|_| no_welcome())?
        .map_err(refused)?;
    let mut inbound = response.into_inner();
    let first = tokio::time::timeout(welcome_timeout, inbound.message())
        .await
        .map_err(|_| no_welcome())?
        .map_err(refused)?
        .ok_or(ConnectError::ClosedBeforeWelcome)?;
    match first.msg {
        Some(control_message::Msg::Welcome(welcome)) => Ok(Established {
            outbound,
            inbound,
            welcome,
        }),
        Some(control_message::Msg::Assign(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Assign" })
        }
        Some(control_message::Msg::Cancel(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Cancel" })
        }
        Some(control_message::Msg::ResultAck(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "ResultAck" })
        }
        Some(control_message::Msg::Heartbeat(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Heartbeat" })
        }
        None => Err(ConnectError::UnexpectedFirst {
            got: "an empty or unknown message",
        }),
    }
}
