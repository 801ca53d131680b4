//! The fake Kubernetes API server's writes (`sre_test_support::kube`) against the real kube-rs
//! client: server-side apply creates, merges and records its manager, `dryRun=All` stores
//! nothing, merge patches remove `null` fields, deletes record their
//! propagation policy and are seen by a watch, and every mutation is recorded.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, Patch, PatchParams, PropagationPolicy, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::json;
use sre_actors::providers::client::install_crypto_provider;
use sre_test_support::kube::FakeKube;

async fn client(f: &FakeKube) -> Client {
    install_crypto_provider();
    let kc = Kubeconfig::from_yaml(&f.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn apply_patch_and_delete_behave_as_the_api_server() {
    let f = FakeKube::start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&f).await, "web");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {"a": "1"}});

    // A dry run answers what would be stored and stores nothing.
    let dry = api
        .patch(
            "flags",
            &PatchParams::apply("me").dry_run(),
            &Patch::Apply(&cm),
        )
        .await
        .unwrap();
    assert_eq!(dry.data.unwrap()["a"], "1");
    assert!(f.get("v1", "ConfigMap", Some("web"), "flags").is_none());
    assert!(f.changes().is_empty());
    assert_eq!(f.mutations().len(), 1);

    let mut watch = api
        .watch(&WatchParams::default(), &f.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    let created = api
        .patch("flags", &PatchParams::apply("me"), &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("web"));
    let managed = created.metadata.managed_fields.unwrap();
    assert_eq!(managed[0].manager.as_deref(), Some("me"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert!(matches!(watch.next().await, Some(Ok(WatchEvent::Added(_)))));

    // Another manager changing the same field conflicts unless forced.
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {"a": "2", "b": "x"}});
    let err = api
        .patch("flags", &PatchParams::apply("other"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains(".data.a")),
        "{err:?}"
    );
    let forced = api
        .patch(
            "flags",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    let data = forced.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("2", "x"));
    assert!(matches!(
        watch.next().await,
        Some(Ok(WatchEvent::Modified(_)))
    ));

    // A merge patch: null removes.
    let patched = api
        .patch(
            "flags",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": null, "c": "3"}})),
        )
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert!(!data.contains_key("b"));
    assert_eq!(data["c"], "3");
    assert!(matches!(
        api.patch("nope", &PatchParams::default(), &Patch::Merge(json!({}))).await,
        Err(kube::Error::Api(s)) if s.code == 404
    ));
    let _ = watch.next().await;

    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete("flags", &dp).await.unwrap();
    assert!(f.get("v1", "ConfigMap", Some("web"), "flags").is_none());
    assert!(matches!(
        watch.next().await,
        Some(Ok(WatchEvent::Deleted(_)))
    ));
    assert!(matches!(
        api.delete("flags", &dp).await,
        Err(kube::Error::Api(s)) if s.code == 404
    ));

    let verbs: Vec<(String, bool, u16)> = f
        .mutations()
        .into_iter()
        .map(|m| (m.verb, m.dry_run, m.status))
        .collect();
    assert_eq!(
        verbs,
        [
            ("apply".to_owned(), true, 201),
            ("apply".to_owned(), false, 201),
            ("apply".to_owned(), false, 409),
            ("apply".to_owned(), false, 200),
            ("patch".to_owned(), false, 200),
            ("patch".to_owned(), false, 404),
            ("delete".to_owned(), false, 200),
            ("delete".to_owned(), false, 404),
        ]
    );
    assert_eq!(f.changes().len(), 4);
    let deletes: Vec<_> = f
        .mutations()
        .into_iter()
        .filter(|m| m.verb == "delete")
        .collect();
    assert_eq!(deletes[0].propagation_policy.as_deref(), Some("Orphan"));
}
