//! Collections: lists cluster-wide and per namespace with `limit`/`continue`, and the
//! `PartialObjectMetadata` forms.

use super::*;

pub(super) fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

pub(super) fn in_namespace(obj: &Value, ns: Option<&str>) -> bool {
    ns.is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
}

pub(super) fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": [ns, name]});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

pub(super) fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v["rv"].as_u64()?,
        v["start"][0].as_str()?.to_owned(),
        v["start"][1].as_str()?.to_owned(),
    ))
}

pub(super) fn list(
    st: &Store,
    ty: usize,
    ns: Option<&str>,
    params: &[(String, String)],
    metadata: bool,
) -> Response {
    let filter = match Filter::parse(params) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let limit = match param(params, "limit").map(str::parse::<usize>) {
        None | Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("limit: Invalid value: not a number"),
    };
    let (rv, after) = match param(params, "continue").filter(|c| !c.is_empty()) {
        None => (st.rv, None),
        Some(token) => match decode_continue(token) {
            Some((rv, _, _)) if rv < st.compacted => return status_response(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                None,
            ),
            Some((rv, ns, name)) => (rv, Some((ns, name))),
            None => return bad_request("continue: Invalid value: the continue token is malformed"),
        },
    };
    let t = &st.types[ty];
    let range = match &after {
        Some(k) => st.objects[ty].range::<(String, String), _>((
            std::ops::Bound::Excluded(k.clone()),
            std::ops::Bound::Unbounded,
        )),
        None => st.objects[ty].range::<(String, String), _>(..),
    };
    let matching: Vec<(&(String, String), &Value)> = range
        .filter(|(_, o)| in_namespace(o, ns) && filter.matches(o))
        .collect();
    let take = limit.unwrap_or(matching.len()).min(matching.len());
    let items: Vec<Value> = matching[..take]
        .iter()
        .map(|(_, o)| if metadata { partial(o) } else { (*o).clone() })
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if take < matching.len() {
        let (kns, kname) = matching[take - 1].0;
        meta["continue"] = json!(encode_continue(rv, kns, kname));
        meta["remainingItemCount"] = json!(matching.len() - take);
    }
    let (kind, api_version) = if metadata {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", t.kind), t.api_version())
    };
    json_response(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": meta,
        "items": items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, "web", "api-1");
        assert_eq!(
            decode_continue(&token),
            Some((42, "web".to_owned(), "api-1".to_owned()))
        );
        assert_eq!(decode_continue("not a token"), None);
    }
}
