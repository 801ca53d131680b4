//! The manifests in `deploy/` agree with the production example: every secret the
//! configuration references is mounted where `SecretStore` reads it
//! (`<secrets.dir>/<namespace>/<name>/<key>`), the embedded sink's data directory is on a
//! writable volume (the root filesystem is read-only), Secrets are readable only through the
//! optional role, and the image is built from pinned bases with the lock file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// Every document of a manifest file under `deploy/kubernetes`.
fn documents(file: &str) -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(root().join("deploy/kubernetes").join(file)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_norway::Value], kind: &str) -> Vec<&'a serde_norway::Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn production() -> Config {
    Config::load(&root().join("config/examples/production.yaml")).unwrap()
}

#[test]
fn the_deployment_mounts_every_secret_the_production_config_reads() {
    let config = production();
    let docs = documents("deployment.yaml");
    let deployment = of_kind(&docs, "Deployment")[0].clone();
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

#[test]
fn the_data_directory_is_on_a_writable_volume_under_a_read_only_root() {
    let config = production();
    let data_dir = &config.intents.embedded.data_dir;
    assert!(data_dir.is_absolute(), "{}", data_dir.display());
    let docs = documents("deployment.yaml");
    let spec = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|m| data_dir.starts_with(PathBuf::from(m["mountPath"].as_str().unwrap())))
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
        .unwrap_or_else(|| panic!("nothing is mounted at {}", data_dir.display()));
    assert_ne!(mount["readOnly"].as_bool(), Some(true), "{mount:?}");
    let name = mount["name"].as_str().unwrap();
    let volume = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap();
    if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
        assert!(
            of_kind(&docs, "PersistentVolumeClaim")
                .iter()
                .any(|c| c["metadata"]["name"].as_str() == Some(claim)),
            "the claim {claim} is not declared"
        );
    } else {
        assert!(
            !volume["emptyDir"].is_null(),
            "{volume:?} is neither a claim nor an emptyDir"
        );
    }
}

/// `(resources, verbs)` of every rule of every Role and ClusterRole in `file`.
fn rules(file: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let strings = |v: &serde_norway::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    documents(file)
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
        .flat_map(|d| d["rules"].as_sequence().unwrap().clone())
        .map(|r| (strings(&r["resources"]), strings(&r["verbs"])))
        .collect()
}

#[test]
fn secrets_are_readable_only_through_the_optional_role() {
    for file in ["rbac.yaml", "rbac-namespaced.yaml"] {
        let rules = rules(file);
        assert!(!rules.is_empty(), "{file}");
        for (resources, verbs) in &rules {
            assert!(
                !resources.iter().any(|r| r == "secrets" || r == "*"),
                "{file} grants {verbs:?} on {resources:?}"
            );
            assert!(
                !verbs
                    .iter()
                    .any(|v| !["get", "list", "watch"].contains(&v.as_str())),
                "{file} grants {verbs:?}: read-only"
            );
        }
    }
    for file in [
        "secrets-read/rbac.yaml",
        "secrets-read/rbac-namespaced.yaml",
    ] {
        assert_eq!(
            rules(file),
            [(
                vec!["secrets".to_owned()],
                vec!["get".to_owned(), "list".to_owned()]
            )],
            "{file}"
        );
    }
    // The switch: a kustomize component, off in the base.
    let component = &documents("secrets-read/kustomization.yaml")[0];
    assert_eq!(component["kind"].as_str(), Some("Component"));
    let base = &documents("kustomization.yaml")[0];
    assert!(
        base["components"].is_null(),
        "secret access is off by default"
    );
    for r in ["deployment.yaml", "rbac.yaml"] {
        assert!(
            base["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|x| x.as_str() == Some(r)),
            "{r}"
        );
    }
}

#[test]
fn writes_are_granted_only_through_the_optional_namespaced_component() {
    let component = &documents("tools-write/kustomization.yaml")[0];
    assert_eq!(component["kind"].as_str(), Some("Component"));
    let base = &documents("kustomization.yaml")[0];
    assert!(base["components"].is_null(), "writes are off by default");
    let docs = documents("tools-write/rbac-namespaced.yaml");
    assert!(
        of_kind(&docs, "ClusterRole").is_empty(),
        "write access is per namespace"
    );
    let rules = rules("tools-write/rbac-namespaced.yaml");
    assert!(rules
        .iter()
        .any(|(r, v)| r == &["pods/exec"] && v == &["create"]));
    for (resources, verbs) in &rules {
        assert!(
            !resources
                .iter()
                .any(|r| r == "secrets" || r == "*" || r == "namespaces"),
            "grants {verbs:?} on {resources:?}"
        );
        assert!(!verbs
            .iter()
            .any(|v| v == "*" || v == "escalate" || v == "bind"));
    }
}

#[test]
fn the_image_builds_locked_from_pinned_bases() {
    let file = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    let froms: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{file}");
    for from in froms {
        let image = from.split_whitespace().nth(1).unwrap();
        let (_, digest) = image
            .split_once("@sha256:")
            .unwrap_or_else(|| panic!("{image} is not pinned by digest"));
        assert_eq!(digest.len(), 64, "{image}");
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{image}");
    }
    assert!(
        file.lines()
            .any(|l| l.starts_with("RUN cargo build") && l.contains("--locked")),
        "{file}"
    );
}

/// The alert rules shipped in `deploy/alerts.yaml` load in Prometheus (promtool, the real
/// checker) and only name metrics the service exports.
#[test]
fn the_alert_rules_are_valid_and_name_our_metrics() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/alerts.yaml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
        .expect("promtool (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(rules).unwrap();
    let sources: String = ["actors", "supervision", "src", "sink"]
        .iter()
        .flat_map(|dir| {
            walk(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/")).join(dir))
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for name in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sre_"))
    {
        let family = name.trim_end_matches("_total").trim_end_matches("_bucket");
        assert!(
            sources.contains(&format!("\"{family}\"")),
            "{name} is not a metric the service registers"
        );
    }
}

fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}
