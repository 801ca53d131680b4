//! A fake Loki: `GET /loki/api/v1/query_range` answering Loki's real shape
//! (`{"status":"success","data":{"resultType":"streams","result":[{"stream":{...},
//! "values":[["<ns>","line"]]}]}}`) from the streams it was given. It parses the queries the
//! client builds — a stream selector of `name="value"` matchers (Go string escapes) and an
//! optional `|= "text"` filter — and answers anything else as Loki does a bad query: HTTP 400
//! with a plain-text `parse error ...`. `start`/`end` (ns), `limit` and `direction` are
//! honoured. Faults (5xx, 429, stalls, oversized bodies) are injected through
//! [`Server`], which it dereferences to.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::faults::{Request, Server};

/// A stream: its labels and its `(nanoseconds, line)` entries.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Entries.
    pub entries: Vec<(i64, String)>,
}

/// A stream from label pairs and entries.
pub fn stream(labels: &[(&str, &str)], entries: &[(i64, &str)]) -> Stream {
    Stream {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        entries: entries.iter().map(|(t, l)| (*t, l.to_string())).collect(),
    }
}

/// A running fake Loki; stops when dropped.
pub struct FakeLoki(Server<Vec<Stream>>);

impl Deref for FakeLoki {
    type Target = Server<Vec<Stream>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakeLoki {
    /// Serves `streams`.
    pub async fn start(streams: Vec<Stream>) -> FakeLoki {
        FakeLoki(Server::start(streams, handle).await)
    }
}

fn parse_error(col: usize, what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "text/plain; charset=utf-8")],
        format!("parse error at line 1, col {col}: syntax error: {what}\n"),
    )
        .into_response()
}

fn handle(state: &Mutex<Vec<Stream>>, req: Request) -> Response {
    if req.path != "/loki/api/v1/query_range" {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    let Some(query) = req.param("query") else {
        return parse_error(1, "unexpected end of input");
    };
    let (matchers, filter) = match parse(query) {
        Ok(p) => p,
        Err((col, what)) => return parse_error(col, &what),
    };
    let num = |name: &str, default: i64| -> Result<i64, String> {
        match req.param(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid parameter {name:?}: {v:?}\n")),
        }
    };
    let (start, end, limit) = match (num("start", 0), num("end", i64::MAX), num("limit", 100)) {
        (Ok(s), Ok(e), Ok(l)) => (s, e, l.max(0) as usize),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => {
            return (StatusCode::BAD_REQUEST, r).into_response()
        }
    };
    let forward = req.param("direction") == Some("forward");
    let streams = state.lock().expect("fake").clone();
    let mut hits: Vec<(i64, usize, String)> = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        if !matchers.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
            continue;
        }
        for (t, line) in &s.entries {
            let inside = *t >= start && *t < end;
            let matches = filter.as_ref().is_none_or(|f| line.contains(f.as_str()));
            if inside && matches {
                hits.push((*t, i, line.clone()));
            }
        }
    }
    hits.sort_by_key(|(t, i, _)| (*t, *i));
    if !forward {
        hits.reverse();
    }
    hits.truncate(limit);
    let mut grouped: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
    for (t, i, line) in &hits {
        grouped
            .entry(*i)
            .or_default()
            .push(json!([t.to_string(), line]));
    }
    let result: Vec<serde_json::Value> = grouped
        .into_iter()
        .map(|(i, values)| json!({"stream": streams[i].labels, "values": values}))
        .collect();
    Json(json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": result,
            "stats": {"summary": {"totalEntriesReturned": hits.len()}}
        }
    }))
    .into_response()
}

type Parsed = (Vec<(String, String)>, Option<String>);

/// `{a="x", b="y"} |= "text"` (the filter optional); an error's column and text otherwise.
fn parse(q: &str) -> Result<Parsed, (usize, String)> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let unexpected = |i: usize| -> (usize, String) {
        match chars.get(i) {
            Some(c) if c.is_alphabetic() => (i + 1, "unexpected IDENTIFIER".into()),
            Some(c) => (i + 1, format!("unexpected {c:?}")),
            None => (i + 1, "unexpected end of input".into()),
        }
    };
    skip(&mut i);
    if chars.get(i) != Some(&'{') {
        return Err(unexpected(i));
    }
    i += 1;
    let mut matchers = Vec::new();
    loop {
        skip(&mut i);
        let begin = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if begin == i {
            return Err(unexpected(i));
        }
        let name: String = chars[begin..i].iter().collect();
        skip(&mut i);
        if chars.get(i) != Some(&'=') {
            return Err(unexpected(i));
        }
        i += 1;
        skip(&mut i);
        let value = string(&chars, &mut i).ok_or_else(|| unexpected(i))?;
        matchers.push((name, value));
        skip(&mut i);
        match chars.get(i) {
            Some(',') => i += 1,
            Some('}') => {
                i += 1;
                break;
            }
            _ => return Err(unexpected(i)),
        }
    }
    skip(&mut i);
    let mut filter = None;
    if i < chars.len() {
        if chars.get(i) != Some(&'|') || chars.get(i + 1) != Some(&'=') {
            return Err(unexpected(i));
        }
        i += 2;
        skip(&mut i);
        filter = Some(string(&chars, &mut i).ok_or_else(|| unexpected(i))?);
        skip(&mut i);
        if i < chars.len() {
            return Err(unexpected(i));
        }
    }
    if matchers.iter().all(|(_, v)| v.is_empty()) {
        return Err((1, "queries require at least one regexp or equality matcher that does not have an empty-compatible value".into()));
    }
    Ok((matchers, filter))
}

/// A Go double-quoted string at `chars[*i]`, unescaped.
pub(crate) fn string(chars: &[char], i: &mut usize) -> Option<String> {
    if chars.get(*i) != Some(&'"') {
        return None;
    }
    *i += 1;
    let mut out = String::new();
    loop {
        let c = *chars.get(*i)?;
        *i += 1;
        match c {
            '"' => return Some(out),
            '\n' => return None,
            '\\' => {
                let e = *chars.get(*i)?;
                *i += 1;
                match e {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = chars.get(*i..*i + 4)?.iter().collect();
                        *i += 4;
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
}
