//! The manifests in `deploy/` agree with the production example: every secret the
//! configuration references is mounted where `SecretStore` reads it
//! (`<secrets.dir>/<namespace>/<name>/<key>`).

use std::collections::BTreeSet;
use std::path::Path;

use sre_config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<mount path>/<item path>` of every projected or plain secret volume of the Deployment.
fn mounted_secret_files(deployment: &serde_norway::Value) -> BTreeSet<String> {
    let spec = &deployment["spec"]["template"]["spec"];
    let mut files = BTreeSet::new();
    let container = &spec["containers"][0];
    for mount in container["volumeMounts"].as_sequence().unwrap() {
        let (name, at) = (
            mount["name"].as_str().unwrap(),
            mount["mountPath"].as_str().unwrap(),
        );
        let volume = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("volume {name} is mounted but not declared"));
        let sources: Vec<&serde_norway::Value> = match volume["projected"]["sources"].as_sequence()
        {
            Some(s) => s.iter().map(|s| &s["secret"]).collect(),
            None => vec![&volume["secret"]],
        };
        for secret in sources.into_iter().filter(|s| !s.is_null()) {
            for item in secret["items"].as_sequence().into_iter().flatten() {
                files.insert(format!("{at}/{}", item["path"].as_str().unwrap()));
            }
        }
    }
    files
}

#[test]
fn the_deployment_mounts_every_secret_the_production_config_reads() {
    let config = Config::load(&root().join("config/examples/production.yaml")).unwrap();
    let manifests =
        std::fs::read_to_string(root().join("deploy/kubernetes/deployment.yaml")).unwrap();
    let deployment = serde_norway::Deserializer::from_str(&manifests)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &serde_norway::Value| d["kind"].as_str() == Some("Deployment"))
        .expect("a Deployment");
    let mounted = mounted_secret_files(&deployment);
    let needs = config.secret_needs();
    assert!(!needs.is_empty());
    for need in needs {
        for key in need.keys {
            let file = config
                .secrets
                .dir
                .join(need.secret.namespace.as_str())
                .join(need.secret.name.as_str())
                .join(key);
            assert!(
                mounted.contains(&file.display().to_string()),
                "{} ({}) is not mounted at {}; mounted: {mounted:?}",
                need.path,
                need.secret,
                file.display()
            );
        }
    }
}
