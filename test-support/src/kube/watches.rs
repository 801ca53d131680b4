//! Watches: newline-delimited JSON events replayed from a `resourceVersion` and then live,
//! bookmarks, `timeoutSeconds`, streaming lists (`sendInitialEvents`), 410 Expired.

use super::*;

pub(super) fn event_line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub(super) fn expired_line(requested: u64, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        status(
            410,
            "Expired",
            &format!("too old resource version: {requested} ({oldest})"),
            None,
        ),
    )
}

pub(super) fn bookmark_line(t: &ResourceType, metadata: bool, rv: u64, initial_end: bool) -> Bytes {
    let (kind, api_version) = if metadata {
        (
            "PartialObjectMetadata".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (t.kind.clone(), t.api_version())
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
    )
}

pub(super) fn render_object(obj: &Value, metadata: bool) -> Value {
    if metadata {
        partial(obj)
    } else {
        obj.clone()
    }
}

pub(super) fn render_event(ev: &HistEvent, spec: &WatchSpec) -> Option<Bytes> {
    if ev.ty != spec.ty {
        return None;
    }
    let matches = |o: &Value| in_namespace(o, spec.ns.as_deref()) && spec.filter.matches(o);
    let kind = match ev.kind {
        EventType::Added => matches(&ev.object).then_some("ADDED")?,
        EventType::Deleted => matches(&ev.object).then_some("DELETED")?,
        EventType::Modified => match (ev.prev.as_ref().is_some_and(matches), matches(&ev.object)) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
    };
    Some(event_line(kind, render_object(&ev.object, spec.metadata)))
}

pub(super) fn start_watch(
    sh: &Shared,
    st: &mut Store,
    ty: usize,
    ns: Option<String>,
    params: &[(String, String)],
    metadata: bool,
) -> Response {
    let filter = match Filter::parse(params) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let spec = WatchSpec {
        ty,
        ns,
        filter,
        metadata,
        bookmarks: flag(params, "allowWatchBookmarks"),
    };
    let timeout = match param(params, "timeoutSeconds").map(str::parse::<u64>) {
        None | Some(Ok(0)) => None,
        Some(Ok(s)) => Some(Duration::from_secs(s)),
        Some(Err(_)) => return bad_request("timeoutSeconds: Invalid value: not a number"),
    };
    let send_initial = flag(params, "sendInitialEvents");
    let mut lines = VecDeque::new();
    match param(params, "resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") {
        Some(rv) if !send_initial => {
            let Ok(from) = rv.parse::<u64>() else {
                return bad_request(format!("resourceVersion: Invalid value: {rv:?}"));
            };
            if from < st.compacted {
                let body = Body::from(expired_line(from, st.compacted));
                return watch_response(body);
            }
            lines.extend(
                st.history
                    .iter()
                    .filter(|e| e.rv > from)
                    .filter_map(|e| render_event(e, &spec)),
            );
        }
        _ => {
            // The current state as synthetic ADDED events.
            lines.extend(
                st.objects[ty]
                    .values()
                    .filter(|o| in_namespace(o, spec.ns.as_deref()) && spec.filter.matches(o))
                    .map(|o| event_line("ADDED", render_object(o, metadata))),
            );
            if send_initial {
                lines.push_back(bookmark_line(&st.types[ty], metadata, st.rv, true));
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    st.subs.push(Sub {
        spec,
        last_rv: st.rv,
        tx,
    });
    st.opened += 1;
    sh.opened.notify_waiters();
    watch_response(watch_body(lines, rx, timeout, sh.killed()))
}

pub(super) fn watch_response(body: Body) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

pub(super) struct WatchState {
    initial: VecDeque<Bytes>,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

pub(super) fn watch_body(
    initial: VecDeque<Bytes>,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    timeout: Option<Duration>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Body {
    let state = WatchState {
        initial,
        rx,
        deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        killed,
        done: false,
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(line) = st.initial.pop_front() {
            return Some((Ok(line), st));
        }
        let aborted = || io::Error::new(io::ErrorKind::ConnectionAborted, "watch disconnected");
        let deadline = async {
            match st.deadline.as_mut() {
                Some(d) => d.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = st.killed.as_mut() => {
                st.done = true;
                Some((Err(aborted()), st))
            }
            msg = st.rx.recv() => match msg {
                Some(WatchMsg::Line(line)) => Some((Ok(line), st)),
                Some(WatchMsg::Abort) => {
                    st.done = true;
                    Some((Err(aborted()), st))
                }
                None => None,
            },
            () = deadline => None,
        }
    });
    Body::from_stream(stream.boxed())
}
