//! Pod logs: `GET /api/v1/namespaces/{ns}/pods/{name}/log` (`container`, `tailLines`,
//! `sinceSeconds`, `timestamps`, `previous`, `limitBytes`).

use super::*;

impl FakeKube {
    /// Sets a container's log lines (time, text without newline). The pod itself must be
    /// applied for `GET .../pods/{name}/log` to find it.
    pub fn set_logs<T, S>(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: impl IntoIterator<Item = (T, S)>,
    ) where
        T: IntoTimestamp,
        S: Into<String>,
    {
        let lines = lines
            .into_iter()
            .map(|(t, s)| (t.into_timestamp(), s.into()))
            .collect();
        self.shared.store().logs.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            lines,
        );
    }
}

pub(super) fn logs(st: &Store, ns: &str, name: &str, params: &[(String, String)]) -> Response {
    let pods = st.find("", "v1", "pods").expect("pods registered");
    let Some(pod) = st.objects[pods].get(&(ns.to_owned(), name.to_owned())) else {
        return not_found(&st.types[pods], name);
    };
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let mut valid = containers.clone();
    valid.extend(names("initContainers"));
    valid.extend(names("ephemeralContainers"));
    let container = match param(params, "container").filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            ))
        }
    };
    if !valid.contains(&container) {
        return bad_request(format!("container {container} is not valid for pod {name}"));
    }
    let empty = Vec::new();
    let lines = st
        .logs
        .get(&(ns.to_owned(), name.to_owned(), container))
        .unwrap_or(&empty);
    let now = st
        .now
        .or_else(|| lines.iter().map(|(t, _)| *t).max())
        .unwrap_or_else(Utc::now);
    let since = match (param(params, "sinceSeconds"), param(params, "sinceTime")) {
        (Some(s), _) => match s.parse::<i64>() {
            Ok(s) => Some(now - chrono::Duration::seconds(s)),
            Err(_) => return bad_request("sinceSeconds: Invalid value: not a number"),
        },
        (None, Some(t)) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => return bad_request("sinceTime: Invalid value: not RFC 3339"),
        },
        (None, None) => None,
    };
    let mut selected: Vec<&(DateTime<Utc>, String)> = lines
        .iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .collect();
    if let Some(n) = param(params, "tailLines") {
        let Ok(n) = n.parse::<usize>() else {
            return bad_request("tailLines: Invalid value: not a number");
        };
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    let timestamps = flag(params, "timestamps");
    let mut text = String::new();
    for (t, line) in selected {
        if timestamps {
            text.push_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true));
            text.push(' ');
        }
        text.push_str(line);
        text.push('\n');
    }
    if let Some(Ok(limit)) = param(params, "limitBytes").map(str::parse::<usize>) {
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        text,
    )
        .into_response()
}
