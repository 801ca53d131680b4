//! Failures and observation on command: fail, stall, recover, expire or disconnect watches,
//! compact, bookmark, kill and restart; the requests seen and the watches open.

use super::*;

impl FakeKube {
    /// Stops serving now: the listener is closed (new connections are refused), open
    /// connections are shut down and open watch streams end. A request already on its way over
    /// a pooled connection may see the connection closed or reset rather than refused.
    pub fn kill(&self) {
        self.shared.kill();
    }

    /// Listens again on the same port after [`kill`](Self::kill); does nothing while serving.
    pub fn restart(&self) {
        let mut slot = self.shared.slot.lock().expect("fake kube listener");
        if slot.listener.is_none() {
            slot.listener = Some(bind(self.shared.addr).expect("rebind the fake kube port"));
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Every subsequent request (including `/version` and discovery) answers `status` with a
    /// `Status` body, until [`recover`](Self::recover).
    pub fn fail_with(&self, status: u16) {
        self.shared.mode.send_replace(Mode::Fail(status));
    }

    /// Subsequent requests are accepted but not answered until [`recover`](Self::recover).
    pub fn stall(&self) {
        self.shared.mode.send_replace(Mode::Stall);
    }

    /// Answers normally again; stalled requests proceed.
    pub fn recover(&self) {
        self.shared.mode.send_replace(Mode::Normal);
    }

    /// Every open watch gets an in-stream `ERROR` event (410 Expired, "too old resource
    /// version") and is closed, and the history is compacted so a later watch from an older
    /// resource version gets the same error: a watcher has to relist.
    pub fn expire_watches(&self) {
        let mut st = self.shared.store();
        let compacted = st.rv;
        for sub in st.subs.drain(..) {
            let _ = sub
                .tx
                .send(WatchMsg::Line(expired_line(sub.last_rv, compacted)));
        }
        st.history.clear();
        st.compacted = compacted;
    }

    /// Abruptly ends every open watch stream (the connection is dropped mid-body, no final
    /// event), as when an API server or a proxy goes away.
    pub fn disconnect_watches(&self) {
        for sub in self.shared.store().subs.drain(..) {
            let _ = sub.tx.send(WatchMsg::Abort);
        }
    }

    /// Drops the event history: watches from a resource version older than the current one get
    /// 410 Expired. Open watches are not affected.
    pub fn compact(&self) {
        let mut st = self.shared.store();
        st.history.clear();
        st.compacted = st.rv;
    }

    /// Sends a BOOKMARK event at the current resource version on every open watch that asked
    /// for `allowWatchBookmarks=true`.
    pub fn bookmark(&self) {
        let mut st = self.shared.store();
        let rv = st.rv;
        let lines: Vec<Option<Bytes>> = st
            .subs
            .iter()
            .map(|s| {
                s.spec
                    .bookmarks
                    .then(|| bookmark_line(&st.types[s.spec.ty], s.spec.metadata, rv, false))
            })
            .collect();
        for (sub, line) in st.subs.iter_mut().zip(lines) {
            if let Some(line) = line {
                sub.last_rv = rv;
                let _ = sub.tx.send(WatchMsg::Line(line));
            }
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.store().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.store().requests.clear();
    }

    /// How many list (not watch) requests a resource (plural, e.g. `pods`) received.
    pub fn lists(&self, plural: &str) -> usize {
        self.shared
            .store()
            .requests
            .iter()
            .filter(|r| r.verb == "list" && r.resource.as_deref() == Some(plural))
            .count()
    }

    /// Waits until exactly `n` watch streams are open (one counts as closed once its client is
    /// gone), woken by streams opening and closing rather than by a timer.
    pub async fn until_open_watches(&self, n: usize) {
        loop {
            let opened = self.shared.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            let open: Vec<mpsc::UnboundedSender<WatchMsg>> = {
                let mut st = self.shared.store();
                st.subs.retain(|s| !s.tx.is_closed());
                st.subs.iter().map(|s| s.tx.clone()).collect()
            };
            match open.len().cmp(&n) {
                std::cmp::Ordering::Equal => return,
                std::cmp::Ordering::Less => opened.await,
                std::cmp::Ordering::Greater => {
                    futures::future::select_all(open.iter().map(|tx| Box::pin(tx.closed()))).await;
                }
            }
        }
    }

    /// Watch streams opened so far (closed ones included).
    pub fn watches_opened(&self) -> u64 {
        self.shared.store().opened
    }

    /// Waits until `total` watch streams have been opened in all.
    pub async fn until_watches_opened(&self, total: u64) {
        loop {
            let opened = self.shared.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.watches_opened() >= total {
                return;
            }
            opened.await;
        }
    }

    /// Watch streams currently open.
    pub fn open_watches(&self) -> usize {
        let mut st = self.shared.store();
        st.subs.retain(|s| !s.tx.is_closed());
        st.subs.len()
    }
}
