//! `HttpServer`: the actor that owns the listener. It binds in `pre_start` (a bind failure is a
//! start failure, retried by its supervisor), serves the router on a task under the server's
//! limits ([`super::serve`]), fails if that task ends on its own, and on stop closes the
//! listener and drains in-flight requests for up to `drain_timeout`, then aborts the rest.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::serve::{serve, HttpMetrics, Limits};

/// The actor.
pub struct HttpServer;

/// Its arguments.
#[derive(Clone)]
pub struct HttpServerArgs {
    /// Where to listen.
    pub listen: SocketAddr,
    /// What to serve.
    pub router: Router,
    /// Receives the bound address on every (re)start.
    pub bound: watch::Sender<Option<SocketAddr>>,
    /// How long in-flight requests may take on shutdown.
    pub drain_timeout: Duration,
    /// Timeouts and the connection limit.
    pub limits: Limits,
    /// Connection metrics.
    pub metrics: HttpMetrics,
}

/// Messages.
pub enum HttpServerMsg {
    /// The serve task ended without being asked to.
    ServeEnded(String),
}

/// Private state. Dropping it (the actor was killed, so no `post_stop` runs) closes the
/// listener and every connection at once.
pub struct HttpServerState {
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Drop for HttpServerState {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Actor for HttpServer {
    type Msg = HttpServerMsg;
    type State = HttpServerState;
    type Arguments = HttpServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HttpServerMsg>,
        args: HttpServerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "HTTP server listening");
        args.bound.send_replace(Some(addr));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            serve(listener, args.router, args.limits, args.metrics, token).await;
            // When shutdown was requested the actor is gone and this cast is a no-op.
            let _ = myself.cast(HttpServerMsg::ServeEnded("serve loop ended".into()));
        });
        Ok(HttpServerState {
            shutdown,
            task: Some(task),
            drain_timeout: args.drain_timeout,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<HttpServerMsg>,
        msg: HttpServerMsg,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HttpServerMsg::ServeEnded(why) => Err(why.into()),
        }
    }

    async fn post_stop(
        &self,
        _: ActorRef<HttpServerMsg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.shutdown.cancel();
        if let Some(mut task) = state.task.take() {
            if tokio::time::timeout(state.drain_timeout, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    timeout_s = state.drain_timeout.as_secs(),
                    "in-flight requests did not finish in time; closing them"
                );
                task.abort();
            }
        }
        Ok(())
    }
}
