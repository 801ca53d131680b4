//! `pods/exec` over a websocket, as the API server serves it to kube-rs and kubectl.
//!
//! The client asks (`GET …/pods/{name}/exec?command=…&container=…&stdout=true&stderr=true`)
//! with an `Upgrade: websocket` handshake offering subprotocols in `Sec-WebSocket-Protocol`;
//! the fake picks the first it supports ([`FakeKube::set_exec_protocols`], by default
//! `v5.channel.k8s.io` and `v4.channel.k8s.io`) and answers `101 Switching Protocols`. Then
//! every message is a binary frame whose first byte is the channel: 1 stdout, 2 stderr, 3 the
//! error channel, which carries one `metav1.Status` (`Success`, or `Failure` with reason
//! `NonZeroExitCode` and the exit code as the `ExitCode` cause) before the fake closes the
//! socket. A client on v5 may send `[255, channel]` to close a stream; it is ignored.
//!
//! What a command prints and how it exits is scripted with [`FakeKube::on_exec`]; without a
//! script the error channel says no handler is installed. A missing pod answers 404, an
//! unknown container or a missing one on a pod of several 400, before any upgrade.

use futures::SinkExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::*;

/// The subprotocols the fake speaks unless told otherwise, preferred first.
pub const EXEC_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// One exec the fake was asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecCall {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container (the pod's only one when the request named none).
    pub container: String,
    /// The argv.
    pub command: Vec<String>,
    /// The subprotocol agreed.
    pub protocol: String,
}

/// What a scripted command does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecReply {
    /// Written to stdout (channel 1).
    pub stdout: Vec<u8>,
    /// Written to stderr (channel 2).
    pub stderr: Vec<u8>,
    /// The exit code (non-zero: a `NonZeroExitCode` status).
    pub exit_code: i32,
    /// After the output, never exit (until the client goes away or the fake is killed).
    pub stall: bool,
    /// Bytes per frame (default 4096).
    pub chunk: Option<usize>,
}

impl ExecReply {
    /// Prints `stdout` and exits 0.
    pub fn stdout(stdout: impl Into<Vec<u8>>) -> Self {
        ExecReply {
            stdout: stdout.into(),
            ..ExecReply::default()
        }
    }

    /// Prints `stderr` and exits `code`.
    pub fn fail(stderr: impl Into<Vec<u8>>, code: i32) -> Self {
        ExecReply {
            stderr: stderr.into(),
            exit_code: code,
            ..ExecReply::default()
        }
    }

    /// Prints `stdout` and never exits.
    pub fn stalled(stdout: impl Into<Vec<u8>>) -> Self {
        ExecReply {
            stdout: stdout.into(),
            stall: true,
            ..ExecReply::default()
        }
    }
}

/// A script for [`FakeKube::on_exec`].
pub(super) type ExecHandler = Arc<dyn Fn(&ExecCall) -> ExecReply + Send + Sync>;

impl FakeKube {
    /// Scripts every subsequent exec: `f` gets the call and says what the command prints and
    /// how it exits.
    pub fn on_exec(&self, f: impl Fn(&ExecCall) -> ExecReply + Send + Sync + 'static) {
        self.shared.store().exec_handler = Some(Arc::new(f));
    }

    /// The exec subprotocols the fake accepts, preferred first (e.g. only
    /// `v4.channel.k8s.io`, as an API server older than 1.30 does).
    pub fn set_exec_protocols(&self, protocols: &[&str]) {
        self.shared.store().exec_protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
    }

    /// The execs run so far.
    pub fn execs(&self) -> Vec<ExecCall> {
        self.shared.store().execs.clone()
    }
}

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;

/// Answers an exec request: checks, then upgrades and runs the script on the socket.
pub(super) fn exec(
    sh: &Arc<Shared>,
    st: &mut Store,
    ns: String,
    pod: String,
    params: &[(String, String)],
    headers: &HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    let pods = st.find("", "v1", "pods").expect("pods are registered");
    let Some(obj) = st.objects[pods].get(&(ns.clone(), pod.clone())).cloned() else {
        return not_found(&st.types[pods], &pod);
    };
    let command: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return bad_request("you must specify at least 1 command");
    }
    let containers: Vec<String> = obj["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match param(params, "container") {
        Some(c) if containers.iter().any(|n| n == c) => c.to_owned(),
        Some(c) => {
            return bad_request(format!("container {c} is not valid for pod {pod}"));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                containers.join(" ")
            ));
        }
    };
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_ws = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (Some(key), true, Some(upgrade)) = (key, is_ws, upgrade) else {
        return bad_request("Upgrade request required");
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let Some(protocol) = offered
        .iter()
        .find(|p| st.exec_protocols.contains(p))
        .cloned()
    else {
        return bad_request(format!(
            "fake kube: none of the subprotocols {offered:?} is supported ({:?})",
            st.exec_protocols
        ));
    };
    let call = ExecCall {
        namespace: ns.clone(),
        pod: pod.clone(),
        container: container.clone(),
        command: command.clone(),
        protocol: protocol.clone(),
    };
    st.execs.push(call.clone());
    st.mutations.push(Mutation {
        verb: "exec".into(),
        resource: "pods".into(),
        namespace: Some(ns),
        name: pod,
        dry_run: false,
        field_manager: None,
        force: false,
        content_type: None,
        propagation_policy: None,
        body: json!({"command": command, "container": container, "protocol": protocol}),
        status: 101,
    });
    let handler = st.exec_handler.clone();
    let killed = sh.killed();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        tokio::select! {
            () = run(ws, handler, call) => {}
            () = killed => {}
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("accept key"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&protocol).expect("protocol"),
    );
    res
}

/// Runs the script on the socket.
async fn run<S>(mut ws: WebSocketStream<S>, handler: Option<ExecHandler>, call: ExecCall)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reply = match handler {
        Some(h) => h(&call),
        None => {
            let status = json!({
                "metadata": {},
                "status": "Failure",
                "message": "fake kube: no exec handler is installed (FakeKube::on_exec)",
                "reason": "InternalError",
                "code": 500,
            });
            let _ = ws.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = ws.close(None).await;
            return;
        }
    };
    let chunk = reply.chunk.unwrap_or(4096).max(1);
    for (channel, data) in [(STDOUT, &reply.stdout), (STDERR, &reply.stderr)] {
        for part in data.chunks(chunk) {
            if ws.send(frame(channel, part)).await.is_err() {
                return;
            }
        }
    }
    if reply.stall {
        // Never exits: read (and ignore) until the client goes away.
        while let Some(Ok(_)) = ws.next().await {}
        return;
    }
    let status = if reply.exit_code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {}",
                call.command, reply.exit_code
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": reply.exit_code.to_string()}]},
        })
    };
    let _ = ws.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = ws.close(None).await;
    // Let the client's close reach us so the connection ends cleanly.
    while let Some(Ok(_)) = ws.next().await {}
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}
