//! One line of the embedded log: the Kafka record (topic, key, headers, value) plus the log's
//! offset and append time.
//!
//! ```json
//! {"offset":7,"timestamp":1764367200123,"topic":"sre.domain.intents.v1","key":"alert:fbab788ec4c1018b",
//!  "headers":{"ce_specversion":"1.0","ce_id":"...","ce_type":"IngestAlertRequested",...},
//!  "value":{"source":"alertmanager",...}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use sre_intents::IntentRecord;

/// A line as written.
#[derive(Serialize)]
pub(crate) struct LineRef<'a> {
    pub offset: u64,
    pub timestamp: u64,
    pub topic: &'a str,
    pub key: &'a str,
    #[serde(serialize_with = "as_map")]
    pub headers: &'a [sre_intents::Header],
    pub value: &'a serde_json::value::RawValue,
}

fn as_map<S: Serializer>(h: &&[sre_intents::Header], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| (k.as_ref(), v)))
}

impl<'a> LineRef<'a> {
    pub(crate) fn new(r: &'a IntentRecord, offset: u64, timestamp: u64) -> Self {
        LineRef {
            offset,
            timestamp,
            topic: &r.topic,
            key: &r.key,
            headers: &r.headers,
            value: &r.value,
        }
    }
}

/// A line as read back.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct StoredRecord {
    /// Position in the log.
    pub offset: u64,
    /// Append time, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: String,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Payload.
    pub value: serde_json::Value,
}

impl StoredRecord {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}
