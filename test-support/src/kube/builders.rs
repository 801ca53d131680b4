//! Ready-made objects as the API server would store them.

use super::*;

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn now_str() -> String {
    rfc3339(Utc::now())
}

pub(super) fn hash(parts: &[&str]) -> u64 {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A stable, UUID-shaped uid for an object (the same for the same kind, namespace and name);
/// what [`FakeKube::apply`] assigns when an object has none, and what the builders use, so an
/// event's `involvedObject.uid` matches the object's.
pub fn uid_for(kind: &str, namespace: &str, name: &str) -> String {
    let a = hash(&[kind, namespace, name]);
    let b = hash(&[name, namespace, kind, "uid"]);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

pub(super) fn ip(prefix: &str, parts: &[&str]) -> String {
    let h = hash(parts);
    format!("{prefix}.{}.{}", (h >> 8) % 254 + 1, h % 254 + 1)
}

pub(super) fn short_hash(parts: &[&str], len: usize) -> String {
    // Kubernetes' generated-name alphabet (no vowels).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = hash(parts);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

pub(super) fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "Ingress" => "networking.k8s.io/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        _ => "v1",
    }
}

/// A running, Ready pod with one container `app` (image `registry.example.com/<name>:1.0.0`,
/// port 8080), labels `app=<name>`, on node `node-1`.
pub fn pod(namespace: &str, name: &str) -> Value {
    let t = now_str();
    let image = format!("registry.example.com/{name}:1.0.0");
    let pod_ip = ip("10.244", &["pod", namespace, name]);
    let condition = |ty: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": t});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Pod", namespace, name),
            "labels": {"app": name},
            "creationTimestamp": t,
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "nodeName": "node-1",
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
        },
        "status": {
            "phase": "Running",
            "conditions": [
                condition("PodReadyToStartContainers"),
                condition("Initialized"),
                condition("Ready"),
                condition("ContainersReady"),
                condition("PodScheduled"),
            ],
            "hostIP": "10.0.0.11",
            "hostIPs": [{"ip": "10.0.0.11"}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": t,
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "app",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": image,
                "imageID": format!("registry.example.com/{name}@sha256:{:016x}{:016x}{:016x}{:016x}",
                    hash(&[name, "1"]), hash(&[name, "2"]), hash(&[name, "3"]), hash(&[name, "4"])),
                "containerID": format!("containerd://{:016x}{:016x}", hash(&[namespace, name, "c1"]), hash(&[namespace, name, "c2"])),
                "state": {"running": {"startedAt": t}},
                "lastState": {},
            }],
        },
    })
}

/// A rolled-out deployment: `replicas` ready and available, `Available=True`
/// (MinimumReplicasAvailable), `Progressing=True` (NewReplicaSetAvailable), generation 1
/// observed; selector and pod template labels `app=<name>`.
pub fn deployment(namespace: &str, name: &str, replicas: u32) -> Value {
    let t = now_str();
    let rs = format!("{name}-{}", short_hash(&["rs", namespace, name], 10));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Deployment", namespace, name),
            "generation": 1,
            "labels": {"app": name},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "creationTimestamp": t,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": format!("registry.example.com/{name}:1.0.0"),
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {},
                    }],
                    "restartPolicy": "Always",
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": format!("ReplicaSet \"{rs}\" has successfully progressed."),
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
            ],
        },
    })
}

/// A ClusterIP service selecting `app=<name>`, port `http` 80 → 8080.
pub fn service(namespace: &str, name: &str) -> Value {
    let cluster_ip = ip("10.96", &["svc", namespace, name]);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Service", namespace, name),
            "labels": {"app": name},
            "creationTimestamp": now_str(),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// The EndpointSlice of a service (`kubernetes.io/service-name` label, owner reference) with
/// `ready_addresses` ready endpoints, each backed by pod `<service>-<i>`.
pub fn endpoint_slice(namespace: &str, service: &str, ready_addresses: usize) -> Value {
    let name = format!("{service}-{}", short_hash(&["eps", namespace, service], 5));
    let endpoints: Vec<Value> = (0..ready_addresses)
        .map(|i| {
            let pod = format!("{service}-{i}");
            json!({
                "addresses": [ip("10.244", &["pod", namespace, &pod])],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": uid_for("Pod", namespace, &pod)},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("EndpointSlice", namespace, &name),
            "generateName": format!("{service}-"),
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Service",
                "name": service,
                "uid": uid_for("Service", namespace, service),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "creationTimestamp": now_str(),
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// A core/v1 `Warning` event about an object (`involvedObject` with its kind, name, namespace,
/// apiVersion and [`uid_for`] uid), seen `count` times, the first 30 s apart before the last
/// (now); the source is the kubelet for pods, the kind's controller otherwise.
pub fn warning_event(
    namespace: &str,
    name: &str,
    involved_kind: &str,
    involved_name: &str,
    reason: &str,
    message: &str,
    count: u32,
) -> Value {
    let last = Utc::now();
    let first = last - chrono::Duration::seconds(30 * i64::from(count.saturating_sub(1)));
    let mut involved = json!({
        "kind": involved_kind,
        "namespace": namespace,
        "name": involved_name,
        "uid": uid_for(involved_kind, namespace, involved_name),
        "apiVersion": api_version_of(involved_kind),
    });
    let source = if involved_kind == "Pod" {
        involved["fieldPath"] = json!("spec.containers{app}");
        json!({"component": "kubelet", "host": "node-1"})
    } else {
        let controller = match involved_kind {
            "Deployment" => "deployment-controller".to_owned(),
            "ReplicaSet" => "replicaset-controller".to_owned(),
            "Service" => "service-controller".to_owned(),
            other => format!("{}-controller", other.to_lowercase()),
        };
        json!({"component": controller})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Event", namespace, name),
            "creationTimestamp": rfc3339(first),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "count": count,
        "type": "Warning",
        "eventTime": null,
        "reportingComponent": source["component"],
        "reportingInstance": source.get("host").cloned().unwrap_or(json!("")),
    })
}

/// An active namespace (label `kubernetes.io/metadata.name`).
pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid_for("Namespace", "", name),
            "labels": {"kubernetes.io/metadata.name": name},
            "creationTimestamp": now_str(),
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// An `Opaque` secret; `data` values are base64-encoded as the API does.
pub fn secret<K, V>(namespace: &str, name: &str, data: impl IntoIterator<Item = (K, V)>) -> Value
where
    K: Into<String>,
    V: AsRef<[u8]>,
{
    let data: serde_json::Map<String, Value> = data
        .into_iter()
        .map(|(k, v)| {
            (
                k.into(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Secret", namespace, name),
            "creationTimestamp": now_str(),
        },
        "type": "Opaque",
        "data": data,
    })
}

/// A config map with one key, `config.yaml`.
pub fn config_map(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("ConfigMap", namespace, name),
            "creationTimestamp": now_str(),
        },
        "data": {"config.yaml": "log_level: info\n"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_and_events_point_at_their_object() {
        assert_eq!(uid_for("Pod", "ns", "api"), uid_for("Pod", "ns", "api"));
        assert_ne!(uid_for("Pod", "ns", "api"), uid_for("Pod", "ns", "web"));
        let e = warning_event("ns", "api.1", "Pod", "api", "BackOff", "m", 3);
        assert_eq!(
            e["involvedObject"]["uid"],
            json!(uid_for("Pod", "ns", "api"))
        );
        assert_eq!(e["count"], json!(3));
        assert_eq!(
            pod("ns", "api")["metadata"]["uid"],
            json!(uid_for("Pod", "ns", "api"))
        );
    }
}
