//! The alert fingerprint exactly as Prometheus computes it (`model.LabelSet.Fingerprint`):
//! FNV-1a 64 over the label pairs sorted by name, each name and value followed by the separator
//! byte 0xff, printed as `%016x`. Used only when the payload has no fingerprint (or
//! `key_source: labels`): a fingerprint the source gave is never re-hashed.

use std::collections::BTreeMap;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

fn add(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The 64-bit fingerprint of a label set (a `BTreeMap` iterates sorted by name).
pub fn fingerprint<K: AsRef<str>, V: AsRef<str>>(labels: &BTreeMap<K, V>) -> u64 {
    let mut h = OFFSET;
    for (name, value) in labels {
        h = add(h, name.as_ref().as_bytes());
        h = add(h, &[SEPARATOR]);
        h = add(h, value.as_ref().as_bytes());
        h = add(h, &[SEPARATOR]);
    }
    h
}

/// The fingerprint as AlertManager prints it.
pub fn fingerprint_hex<K: AsRef<str>, V: AsRef<str>>(labels: &BTreeMap<K, V>) -> String {
    format!("{:016x}", fingerprint(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn prometheus_test_vectors() {
        assert_eq!(fingerprint_hex(&labels(&[])), "cbf29ce484222325");
        assert_eq!(
            fingerprint_hex(&labels(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            "507a62d79ee76c9a"
        );
    }

    #[test]
    fn the_shared_fixture_reproduces_its_fingerprint() {
        // A copy of shared/fixtures/alertmanager/alertmanager_webhook_v4_resolved_k8s.json.
        let text = include_str!("../../tests/fixtures/alertmanager_webhook_v4_resolved_k8s.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let alert = &v["alerts"][0];
        let l: BTreeMap<String, String> = serde_json::from_value(alert["labels"].clone()).unwrap();
        assert_eq!(fingerprint_hex(&l), alert["fingerprint"].as_str().unwrap());
        assert_eq!(fingerprint_hex(&l), "fbab788ec4c1018b");
    }
}
