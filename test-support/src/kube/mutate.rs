//! Writes: server-side apply, merge and strategic-merge patches, and delete, each recorded as
//! a [`Mutation`] (dry runs and refusals too) so a test can say "exactly one change" or "no
//! change".
//!
//! # Server-side apply (`PATCH`, `Content-Type: application/apply-patch+yaml`)
//! The body (YAML or JSON) must name the URL's kind and name; `fieldManager` is required
//! (400 otherwise). Creates the object when missing (201), else merges the applied
//! configuration into it (200) — a **simple merge**: maps merge key by key, lists and scalars
//! are replaced whole; fields the manager applied before and omits now are *not* removed.
//! Field ownership is kept per manager in `metadata.managedFields` (`operation: Apply`,
//! `fieldsType: FieldsV1`, with every applied leaf as `f:<key>` entries; a list is one leaf).
//! Applying a leaf another manager owns with a *different* value answers 409 Conflict
//! (`FieldManagerConflict` causes naming each field) unless `force=true`, which takes the
//! fields over. `dryRun=All` answers what would be stored and stores nothing.
//!
//! # Patches
//! `application/merge-patch+json` is RFC 7386; `application/strategic-merge-patch+json` is
//! handled the same way (lists are replaced, not merged by their keys — enough for
//! annotations such as a rollout restart's). `application/json-patch+json` answers 415. The
//! object must exist (404). A `fieldManager` is recorded as an `Update` manager.
//!
//! # Delete
//! `propagationPolicy` (`Foreground`, `Background`, `Orphan`) and `dryRun` are read from the
//! `DeleteOptions` body or the query; the object is removed at once (no finalizers are run)
//! and answered with `metadata.deletionTimestamp` set. 404 when missing.

use super::*;

/// A mutating request the fake received (a dry run or a refused one too).
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// `apply`, `patch`, `delete` or `exec`.
    pub verb: String,
    /// The plural resource (`deployments`; `pods` for exec).
    pub resource: String,
    /// The namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// The `fieldManager` parameter.
    pub field_manager: Option<String>,
    /// The `force` parameter (apply).
    pub force: bool,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// A delete's `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// The body as JSON (an apply's object, a patch, a delete's options), or for an exec
    /// `{"command": [...], "container": ..., "protocol": ...}`.
    pub body: Value,
    /// The HTTP status answered (101 for an exec that ran).
    pub status: u16,
}

impl Mutation {
    /// Whether it changed something: not a dry run, and answered with success (an exec that
    /// ran counts).
    pub fn changed(&self) -> bool {
        !self.dry_run && (100..300).contains(&self.status)
    }
}

impl FakeKube {
    /// Every mutating request received so far, in order (dry runs and refusals included).
    pub fn mutations(&self) -> Vec<Mutation> {
        self.shared.store().mutations.clone()
    }

    /// The mutating requests that changed something ([`Mutation::changed`]).
    pub fn changes(&self) -> Vec<Mutation> {
        self.mutations()
            .into_iter()
            .filter(Mutation::changed)
            .collect()
    }
}

/// What a write request says about itself.
pub(super) struct WriteRequest<'a> {
    pub(super) method: &'a Method,
    pub(super) params: &'a [(String, String)],
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
}

/// Handles a PATCH or DELETE of an object.
pub(super) fn write(
    st: &mut Store,
    ty: usize,
    ns: Option<String>,
    name: String,
    req: WriteRequest<'_>,
) -> Response {
    let t = st.types[ty].clone();
    let content_type = req.content_type.clone();
    let base_ct = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let body_json = parse_body(&req.body);
    let mut m = Mutation {
        verb: String::new(),
        resource: t.plural.clone(),
        namespace: ns.clone(),
        name: name.clone(),
        dry_run: param(req.params, "dryRun") == Some("All"),
        field_manager: param(req.params, "fieldManager").map(str::to_owned),
        force: flag(req.params, "force"),
        content_type,
        propagation_policy: None,
        body: body_json.clone().unwrap_or(Value::Null),
        status: 0,
    };
    let key = (ns.clone().unwrap_or_default(), name.clone());
    let (status, res) = if *req.method == Method::DELETE {
        m.verb = "delete".into();
        let opts = body_json.unwrap_or(Value::Null);
        m.propagation_policy = opts["propagationPolicy"]
            .as_str()
            .or_else(|| param(req.params, "propagationPolicy"))
            .map(str::to_owned);
        if opts["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"))
        {
            m.dry_run = true;
        }
        delete(st, ty, &key, &m)
    } else {
        match base_ct.as_str() {
            "application/apply-patch+yaml" => {
                m.verb = "apply".into();
                apply(st, ty, &key, &m)
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                m.verb = "patch".into();
                patch(st, ty, &key, &m)
            }
            other => {
                m.verb = "patch".into();
                let msg = format!("the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json (fake kube: {other:?} is not served)");
                (415, status_response(415, "UnsupportedMediaType", msg, None))
            }
        }
    };
    m.status = status;
    st.mutations.push(m);
    res
}

fn parse_body(body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_norway::from_slice(body).ok())
}

fn delete(st: &mut Store, ty: usize, key: &(String, String), m: &Mutation) -> (u16, Response) {
    if let Some(p) = &m.propagation_policy {
        if !matches!(p.as_str(), "Foreground" | "Background" | "Orphan") {
            let msg = format!("DeleteOptions.propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\"");
            return (422, status_response(422, "Invalid", msg, None));
        }
    }
    let Some(live) = st.objects[ty].get(key).cloned() else {
        return (404, not_found(&st.types[ty], &key.1));
    };
    let mut gone = if m.dry_run {
        live
    } else {
        st.remove(ty, key).expect("present")
    };
    gone["metadata"]["deletionTimestamp"] = json!(rfc3339(st.now()));
    (200, json_response(gone))
}

fn patch(st: &mut Store, ty: usize, key: &(String, String), m: &Mutation) -> (u16, Response) {
    if !m.body.is_object() {
        return (400, bad_request("the patch is not a JSON object"));
    }
    let Some(live) = st.objects[ty].get(key).cloned() else {
        return (404, not_found(&st.types[ty], &key.1));
    };
    let mut obj = live;
    merge_patch(&mut obj, &m.body);
    // The identity of the object is not patched.
    obj["metadata"]["name"] = json!(key.1);
    if st.types[ty].namespaced {
        obj["metadata"]["namespace"] = json!(key.0);
    }
    if let Some(manager) = &m.field_manager {
        let fields = leaves(&m.body);
        set_managed(
            &mut obj,
            manager,
            "Update",
            &fields,
            &st.types[ty],
            st.now(),
        );
    }
    if m.dry_run {
        return (200, json_response(obj));
    }
    (200, json_response(st.upsert(ty, obj)))
}

fn apply(st: &mut Store, ty: usize, key: &(String, String), m: &Mutation) -> (u16, Response) {
    let t = st.types[ty].clone();
    let Some(manager) = m.field_manager.clone() else {
        return (
            400,
            bad_request("PATCH /: fieldManager is required for apply requests"),
        );
    };
    let applied = &m.body;
    if !applied.is_object() {
        return (
            400,
            bad_request("the applied configuration is not an object"),
        );
    }
    if applied["apiVersion"] != json!(t.api_version()) || applied["kind"] != json!(t.kind) {
        let msg = format!(
            "the API version in the data ({}) does not match the expected API version ({}) or the kind ({}) does not match {}",
            applied["apiVersion"], t.api_version(), applied["kind"], t.kind
        );
        return (400, bad_request(msg));
    }
    if applied["metadata"]["name"] != json!(key.1) {
        let msg = format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            applied["metadata"]["name"], key.1
        );
        return (400, bad_request(msg));
    }
    if t.namespaced {
        if let Some(ns) = applied["metadata"]["namespace"].as_str() {
            if ns != key.0 {
                let msg = "the namespace of the provided object does not match the namespace sent on the request";
                return (400, bad_request(msg));
            }
        }
    }
    let fields = leaves(applied);
    let live = st.objects[ty].get(key).cloned();
    let mut obj = match &live {
        Some(live) => {
            if !m.force {
                let conflicts = conflicts(live, applied, &manager, &fields);
                if !conflicts.is_empty() {
                    return (409, conflict_response(&t, &key.1, &conflicts));
                }
            }
            let mut obj = live.clone();
            merge(&mut obj, applied);
            obj
        }
        None => applied.clone(),
    };
    // The object lives where the URL says (the body may leave its namespace out).
    if t.namespaced {
        obj["metadata"]["namespace"] = json!(key.0);
    }
    if m.force {
        disown(&mut obj, &manager, &fields);
    }
    set_managed(&mut obj, &manager, "Apply", &fields, &t, st.now());
    let code = if live.is_some() { 200 } else { 201 };
    let stored = if m.dry_run {
        st.prepare(ty, &mut obj);
        if let Some(rv) = live
            .as_ref()
            .map(|l| l["metadata"]["resourceVersion"].clone())
        {
            obj["metadata"]["resourceVersion"] = rv;
        }
        obj
    } else {
        st.upsert(ty, obj)
    };
    let status = StatusCode::from_u16(code).expect("status");
    (code, (status, json_response(stored)).into_response())
}

/// RFC 7386: `null` removes, objects merge, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The apply merge: objects merge key by key, everything else (lists included) replaces.
fn merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied.as_object()) {
        (Some(t), Some(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

/// The leaf paths of an object (`["spec", "replicas"]`), lists being leaves; `apiVersion`,
/// `kind`, `metadata.name` and `metadata.namespace` are identity, not fields.
fn leaves(v: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
        )
    });
    out
}

/// `{"f:spec": {"f:replicas": {}}}` for the leaves.
fn fields_v1(fields: &[Vec<String>]) -> Value {
    let mut root = json!({});
    for path in fields {
        let mut node = &mut root;
        for seg in path {
            node = node
                .as_object_mut()
                .expect("object")
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// The leaves a `fieldsV1` names.
fn from_fields_v1(v: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.strip_prefix("f:").unwrap_or(k).to_owned());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The fields of `applied` another manager owns in `live` with a different value.
fn conflicts(
    live: &Value,
    applied: &Value,
    manager: &str,
    fields: &[Vec<String>],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(other) = entry["manager"].as_str() else {
            continue;
        };
        if other == manager {
            continue;
        }
        let owned = from_fields_v1(&entry["fieldsV1"]);
        for f in fields {
            let overlaps = owned.iter().any(|o| o.starts_with(f) || f.starts_with(o));
            if overlaps && at(live, f) != at(applied, f) {
                out.push((other.to_owned(), format!(".{}", f.join("."))));
            }
        }
    }
    out
}

fn conflict_response(t: &ResourceType, name: &str, conflicts: &[(String, String)]) -> Response {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, field)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {manager:?}"),
                "field": field,
            })
        })
        .collect();
    let list = conflicts
        .iter()
        .map(|(m, f)| format!("- {f} (owned by {m:?})"))
        .collect::<Vec<_>>()
        .join("\n");
    let message = format!("Apply failed with {} conflict(s):\n{list}", conflicts.len());
    status_response(
        409,
        "Conflict",
        message,
        Some(json!({"name": name, "kind": t.plural, "causes": causes})),
    )
}

/// Other managers lose `fields` (a forced apply takes them over).
fn disown(obj: &mut Value, manager: &str, fields: &[Vec<String>]) {
    let Some(entries) = obj["metadata"]["managedFields"].as_array_mut() else {
        return;
    };
    for entry in entries.iter_mut() {
        if entry["manager"] == json!(manager) {
            continue;
        }
        let mut owned = from_fields_v1(&entry["fieldsV1"]);
        owned.retain(|o| !fields.iter().any(|f| o.starts_with(f) || f.starts_with(o)));
        entry["fieldsV1"] = fields_v1(&owned);
    }
    entries.retain(|e| e["fieldsV1"].as_object().is_some_and(|m| !m.is_empty()));
}

/// Records `manager` (with `operation`) as owning `fields`, besides what it owned before.
fn set_managed(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    fields: &[Vec<String>],
    t: &ResourceType,
    now: DateTime<Utc>,
) {
    if !obj["metadata"]["managedFields"].is_array() {
        obj["metadata"]["managedFields"] = json!([]);
    }
    let entries = obj["metadata"]["managedFields"]
        .as_array_mut()
        .expect("array");
    let mut owned: Vec<Vec<String>> = Vec::new();
    entries.retain(|e| {
        let mine = e["manager"] == json!(manager) && e["operation"] == json!(operation);
        if mine {
            owned = from_fields_v1(&e["fieldsV1"]);
        }
        !mine
    });
    for f in fields {
        if !owned.contains(f) {
            owned.push(f.clone());
        }
    }
    entries.push(json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": t.api_version(),
        "time": rfc3339(now),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(&owned),
    }));
}
