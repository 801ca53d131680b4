//! The listener and the connections, which can all be closed at once (a killed API server).

use super::*;

pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(super) struct Acceptor(pub(super) Arc<Shared>);

impl axum::serve::Listener for Acceptor {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let accepted = std::future::poll_fn(|cx| {
                let mut slot = self.0.slot.lock().expect("fake kube listener");
                slot.waker = Some(cx.waker().clone());
                match &slot.listener {
                    Some(l) => l.poll_accept(cx),
                    None => Poll::Pending,
                }
            })
            .await;
            match accepted.and_then(|(stream, peer)| Ok((Conn::new(&self.0, stream)?, peer))) {
                Ok(conn) => return conn,
                Err(e) => {
                    tracing::debug!(error = %e, "fake kube: accept failed");
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.addr)
    }
}

/// An accepted connection; its socket is shut down when the server is killed.
pub(super) struct Conn {
    id: u64,
    io: Option<TcpStream>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    conns: Conns,
}

impl Conn {
    pub(super) fn new(shared: &Shared, stream: TcpStream) -> io::Result<Conn> {
        // Like a real API server: each watch event goes out at once. With Nagle's algorithm an
        // event written while the previous one is unacknowledged waits for the client's
        // delayed ACK (40 ms of wall time), and a paused tokio clock meanwhile jumps to the
        // next timer (a watch timeout, the caller's own timeout).
        stream.set_nodelay(true)?;
        let std = stream.into_std()?;
        let dup = std.try_clone()?;
        let io = TcpStream::from_std(std)?;
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let killed = shared.killed();
        shared
            .conns
            .lock()
            .expect("fake kube conns")
            .insert(id, dup);
        Ok(Conn {
            id,
            io: Some(io),
            killed,
            conns: shared.conns.clone(),
        })
    }

    pub(super) fn io(&mut self, cx: &mut Context<'_>) -> io::Result<Pin<&mut TcpStream>> {
        if self.io.is_some() && self.killed.as_mut().poll(cx).is_ready() {
            self.io = None;
        }
        match self.io.as_mut() {
            Some(io) => Ok(Pin::new(io)),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake kube killed",
            )),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&self.id);
        }
    }
}

impl Conn {
    /// Runs an I/O operation on the socket unless the server was killed.
    pub(super) fn op<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.get_mut().io(cx) {
            Ok(io) => f(io, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_shutdown(cx))
    }
}
