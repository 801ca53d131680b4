//! Routing a request to what it asks for, recording it, and the `Status` responses.

use super::*;

pub(super) enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Collection {
        ty: usize,
        ns: Option<String>,
    },
    Item {
        ty: usize,
        ns: Option<String>,
        name: String,
    },
    Log {
        ns: String,
        name: String,
    },
    Exec {
        ns: String,
        name: String,
    },
    NotFound,
}

pub(super) fn route(st: &Store, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::Resources(String::new(), (*v).to_owned()),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group((*g).to_owned()),
        ["apis", g, v] => Route::Resources((*g).to_owned(), (*v).to_owned()),
        ["api", v, rest @ ..] => resource_route(st, "", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(st, g, v, rest),
        _ => Route::NotFound,
    }
}

pub(super) fn resource_route(st: &Store, group: &str, version: &str, rest: &[&str]) -> Route {
    let find = |plural: &str| st.find(group, version, plural);
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(ty) = find(plural).filter(|&ty| st.types[ty].namespaced) {
            let ns = (*ns).to_owned();
            return match tail {
                [] => Route::Collection { ty, ns: Some(ns) },
                [name] => Route::Item {
                    ty,
                    ns: Some(ns),
                    name: (*name).to_owned(),
                },
                [name, "log"] if group.is_empty() && *plural == "pods" => Route::Log {
                    ns,
                    name: (*name).to_owned(),
                },
                [name, "exec"] if group.is_empty() && *plural == "pods" => Route::Exec {
                    ns,
                    name: (*name).to_owned(),
                },
                _ => Route::NotFound,
            };
        }
    }
    match rest {
        [plural] => match find(plural) {
            Some(ty) => Route::Collection { ty, ns: None },
            None => Route::NotFound,
        },
        [plural, name] => match find(plural).filter(|&ty| !st.types[ty].namespaced) {
            Some(ty) => Route::Item {
                ty,
                ns: None,
                name: (*name).to_owned(),
            },
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn flag(params: &[(String, String)], name: &str) -> bool {
    matches!(param(params, name), Some("true" | "1"))
}

/// The most body a write may carry.
const MAX_WRITE_BODY: usize = 8 << 20;

pub(super) async fn handle(State(sh): State<Arc<Shared>>, req: axum::extract::Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let (method, uri, headers) = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let body = match axum::body::to_bytes(body, MAX_WRITE_BODY).await {
        Ok(b) => b,
        Err(e) => return status_response(413, "RequestEntityTooLarge", e.to_string(), None),
    };
    let params: Vec<(String, String)> = Query::try_from_uri(&uri)
        .map(|q: Query<Vec<(String, String)>>| q.0)
        .unwrap_or_default();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let watch = flag(&params, "watch");
    {
        let mut st = sh.store();
        let (verb, resource) = match route(&st, uri.path()) {
            Route::Version => ("version", None),
            Route::CoreVersions | Route::Groups | Route::Group(_) | Route::Resources(..) => {
                ("discovery", None)
            }
            Route::Collection { ty, .. } => (
                if watch { "watch" } else { "list" },
                Some(st.types[ty].plural.clone()),
            ),
            Route::Item { ty, .. } => (
                match method {
                    Method::PATCH => "patch",
                    Method::DELETE => "delete",
                    _ => "get",
                },
                Some(st.types[ty].plural.clone()),
            ),
            Route::Log { .. } => ("log", Some("pods".to_owned())),
            Route::Exec { .. } => ("exec", Some("pods".to_owned())),
            Route::NotFound => ("unknown", None),
        };
        st.requests.push(Request {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            params: params.clone(),
            accept: accept.clone(),
            verb: verb.to_owned(),
            resource,
        });
    }

    // Injected failures.
    let mut mode = sh.mode.subscribe();
    let mut killed = sh.killed();
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Normal => break,
            Mode::Fail(code) => return injected_failure(code),
            Mode::Stall => {
                tokio::select! {
                    changed = mode.changed() => if changed.is_err() {
                        return status_response(503, "ServiceUnavailable", "fake kube stopped", None);
                    },
                    () = &mut killed => {
                        return status_response(503, "ServiceUnavailable", "fake kube stopped", None);
                    }
                }
            }
        }
    }

    if let Some(token) = &sh.token {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {token}"));
        if !ok {
            return status_response(401, "Unauthorized", "Unauthorized", None);
        }
    }
    if method == Method::PATCH || method == Method::DELETE {
        let mut st = sh.store();
        if let Route::Item { ty, ns, name } = route(&st, uri.path()) {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let req = WriteRequest {
                method: &method,
                params: &params,
                content_type,
                body,
            };
            return write(&mut st, ty, ns, name, req);
        }
    }
    if method != Method::GET {
        return status_response(
            405,
            "MethodNotAllowed",
            format!(
                "the fake server does not allow this method ({method}) on the requested resource"
            ),
            None,
        );
    }

    let accept = accept.unwrap_or_default();
    let metadata = accept.contains("as=PartialObjectMetadata");
    let aggregated = accept.contains("as=APIGroupDiscoveryList");
    let mut st = sh.store();
    let rt = route(&st, uri.path());
    match rt {
        Route::Version => json_response(version_info()),
        Route::CoreVersions if aggregated => aggregated_response(&st, true),
        Route::CoreVersions => json_response(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": sh.addr.to_string()}],
        })),
        Route::Groups if aggregated => aggregated_response(&st, false),
        Route::Groups => json_response(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": st.groups().iter().map(|(g, vs)| api_group(g, vs)).collect::<Vec<_>>(),
        })),
        Route::Group(g) => match st.groups().into_iter().find(|(name, _)| *name == g) {
            Some((g, vs)) => {
                let mut v = api_group(&g, &vs);
                v["apiVersion"] = json!("v1");
                json_response(v)
            }
            None => not_found_path(),
        },
        Route::Resources(g, v) => match resource_list(&st, &g, &v) {
            Some(list) => json_response(list),
            None => not_found_path(),
        },
        Route::Collection { ty, ns } if watch => {
            start_watch(&sh, &mut st, ty, ns, &params, metadata)
        }
        Route::Collection { ty, ns } => list(&st, ty, ns.as_deref(), &params, metadata),
        Route::Item { ty, ns, name } => {
            let key = (ns.unwrap_or_default(), name);
            match st.objects[ty].get(&key) {
                Some(obj) if metadata => json_response(partial(obj)),
                Some(obj) => json_response(obj.clone()),
                None => not_found(&st.types[ty], &key.1),
            }
        }
        Route::Log { ns, name } => logs(&st, &ns, &name, &params),
        Route::Exec { ns, name } => exec(&sh, &mut st, ns, name, &params, &headers, upgrade),
        Route::NotFound => not_found_path(),
    }
}

pub(super) fn json_response(v: Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

pub(super) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// A `Status` object as the API server sends it.
pub(super) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

pub(super) fn status_response(
    code: u16,
    reason: &str,
    message: impl AsRef<str>,
    details: Option<Value>,
) -> Response {
    let body = status(code, reason, message.as_ref(), details);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, json_response(body)).into_response()
}

pub(super) fn injected_failure(code: u16) -> Response {
    let reason = reason_for(code);
    let message = match code {
        401 => "Unauthorized".to_owned(),
        403 => "forbidden: the fake API server was told to refuse this request".to_owned(),
        429 => "Too many requests, please try again later.".to_owned(),
        _ => format!("fake kube: injected failure ({code} {reason})"),
    };
    let mut res = status_response(code, reason, message, None);
    if code == 429 {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

pub(super) fn not_found_path() -> Response {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(
            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}),
        ),
    )
}

pub(super) fn not_found(t: &ResourceType, name: &str) -> Response {
    let what = if t.group.is_empty() {
        t.plural.clone()
    } else {
        format!("{}.{}", t.plural, t.group)
    };
    let mut details = json!({"name": name, "kind": t.plural});
    if !t.group.is_empty() {
        details["group"] = json!(t.group);
    }
    status_response(
        404,
        "NotFound",
        format!("{what} \"{name}\" not found"),
        Some(details),
    )
}

pub(super) fn bad_request(message: impl AsRef<str>) -> Response {
    status_response(400, "BadRequest", message, None)
}

pub(super) fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:04:32Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
