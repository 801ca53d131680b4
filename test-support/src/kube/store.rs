//! The object store: objects by type, namespace and name, the global `resourceVersion`, and
//! the event history watches replay.

use super::*;

impl FakeKube {
    /// Adds a resource type (e.g. a CRD): served in discovery, listable and watchable.
    pub fn register_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) {
        self.shared
            .store()
            .register(group, version, kind, plural, namespaced);
    }

    /// Creates or replaces an object by (apiVersion, kind, namespace, name). Assigns
    /// `metadata.uid` when missing (the previous object's, else [`uid_for`]),
    /// `metadata.creationTimestamp` when missing (the previous object's, else now) and
    /// `metadata.resourceVersion` (the next global version); a namespaced object without a
    /// namespace goes to `default`. Records an ADDED or MODIFIED event and returns the stored
    /// object. Panics when the object has no apiVersion, kind or name, or its type is not
    /// registered.
    pub fn apply(&self, mut obj: Value) -> Value {
        let api_version = obj["apiVersion"]
            .as_str()
            .expect("fake kube: object without apiVersion")
            .to_owned();
        let kind = obj["kind"]
            .as_str()
            .expect("fake kube: object without kind")
            .to_owned();
        let mut st = self.shared.store();
        let ty = st.find_kind(&api_version, &kind).unwrap_or_else(|| {
            panic!("fake kube: {api_version} {kind} is not registered (register_kind)")
        });
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        assert!(
            obj["metadata"]["name"].is_string(),
            "fake kube: object without metadata.name"
        );
        st.upsert(ty, obj)
    }

    /// Removes an object; bumps the resource version and records DELETED with the final object
    /// (whose `resourceVersion` is the new version). False when there was no such object.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let mut st = self.shared.store();
        let Some(ty) = st.find_kind(api_version, kind) else {
            return false;
        };
        let key = st.key(ty, namespace, name);
        st.remove(ty, &key).is_some()
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.store();
        let ty = st.find_kind(api_version, kind)?;
        let key = st.key(ty, namespace, name);
        st.objects[ty].get(&key).cloned()
    }

    /// Every stored object of a type, sorted by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let st = self.shared.store();
        st.find_kind(api_version, kind)
            .map(|ty| st.objects[ty].values().cloned().collect())
            .unwrap_or_default()
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Sets the fake "now" (used by `sinceSeconds` and for new creation timestamps). Without
    /// it, `sinceSeconds` counts from the container's latest log line.
    pub fn set_now(&self, now: impl IntoTimestamp) {
        self.shared.store().now = Some(now.into_timestamp());
    }
}

impl Store {
    /// Stores `obj` (of type `ty`, with a `metadata.name`) as [`FakeKube::apply`] describes:
    /// namespace, uid, creation time and the next resource version; publishes ADDED or
    /// MODIFIED.
    pub(super) fn upsert(&mut self, ty: usize, mut obj: Value) -> Value {
        let (key, prev) = self.prepare(ty, &mut obj);
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects[ty].insert(key, obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.publish(HistEvent {
            ty,
            kind,
            object: obj.clone(),
            prev,
            rv,
        });
        obj
    }

    /// Fills in what storing `obj` would (namespace, uid, creation time) without storing it;
    /// returns its key and the object it would replace.
    pub(super) fn prepare(&self, ty: usize, obj: &mut Value) -> ((String, String), Option<Value>) {
        let namespaced = self.types[ty].namespaced;
        let kind = self.types[ty].kind.clone();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ns = if namespaced {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            String::new()
        };
        let key = (ns, name);
        let prev = self.objects[ty].get(&key).cloned();
        let now = self.now();
        let meta = obj["metadata"].as_object_mut().expect("metadata object");
        if !meta.get("uid").is_some_and(Value::is_string) {
            let uid = prev
                .as_ref()
                .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_else(|| uid_for(&kind, &key.0, &key.1));
            meta.insert("uid".into(), json!(uid));
        }
        if !meta.get("creationTimestamp").is_some_and(Value::is_string) {
            let created = prev
                .as_ref()
                .map(|p| p["metadata"]["creationTimestamp"].clone())
                .filter(Value::is_string)
                .unwrap_or_else(|| json!(rfc3339(now)));
            meta.insert("creationTimestamp".into(), created);
        }
        (key, prev)
    }

    /// Removes an object, publishing DELETED; `None` when there was none.
    pub(super) fn remove(&mut self, ty: usize, key: &(String, String)) -> Option<Value> {
        let mut obj = self.objects[ty].remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.publish(HistEvent {
            ty,
            kind: EventType::Deleted,
            object: obj.clone(),
            prev: Some(obj.clone()),
            rv,
        });
        Some(obj)
    }

    pub(super) fn register(
        &mut self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) {
        let t = ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        };
        if let Some(i) = self.find(group, version, plural) {
            self.types[i] = t;
        } else {
            self.types.push(t);
            self.objects.push(BTreeMap::new());
        }
    }

    pub(super) fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub(super) fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub(super) fn key(&self, ty: usize, namespace: Option<&str>, name: &str) -> (String, String) {
        let ns = if self.types[ty].namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        (ns.to_owned(), name.to_owned())
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    pub(super) fn publish(&mut self, ev: HistEvent) {
        self.subs
            .retain_mut(|sub| match render_event(&ev, &sub.spec) {
                Some(line) => {
                    sub.last_rv = ev.rv;
                    sub.tx.send(WatchMsg::Line(line)).is_ok()
                }
                None => !sub.tx.is_closed(),
            });
        self.history.push(ev);
    }
}
