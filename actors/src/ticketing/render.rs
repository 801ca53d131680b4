//! What a ticket says, once, rendered for each provider: Atlassian Document Format for Jira
//! (v3 `description` and comment `body`) and GitHub-flavoured markdown for GitHub.
//!
//! A ticket's body carries the incident's summary, severity, service, environment,
//! cluster/namespace, alert fingerprints and links (as ADF `link` marks / markdown links; only
//! `http(s)` URLs become links, anything else stays text). Comments carry who and when, and a
//! marker `sre-fact:<ce_id>` (visible text in Jira, an HTML comment in GitHub) by which a
//! retried apply recognises a comment it already posted. Everything read from a fact is capped
//! ([`MAX_SUMMARY_CHARS`], [`MAX_LIST_ITEMS`]) so a ticket stays within the providers' limits.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sre_intents::facts::{Created, Fact, FactBody};

/// Longest title (Jira's `summary` limit; GitHub's titles are longer).
pub const MAX_TITLE_CHARS: usize = 255;
/// Longest incident summary copied into a ticket.
pub const MAX_SUMMARY_CHARS: usize = 8_000;
/// Most fingerprints, links or free-text lines copied into a ticket.
pub const MAX_LIST_ITEMS: usize = 50;

/// The marker of the comment made for fact `ce_id`.
pub fn fact_marker(ce_id: &str) -> String {
    format!("sre-fact:{ce_id}")
}

/// The title: one line, at most [`MAX_TITLE_CHARS`] characters (an ellipsis when cut).
pub fn title(created: &Created) -> String {
    let one_line: String = created
        .title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let one_line = if one_line.is_empty() {
        "Incident".to_owned()
    } else {
        one_line
    };
    cut(&one_line, MAX_TITLE_CHARS)
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One line of the facts table: label and value.
fn facts_table(incident_id: &str, c: &Created) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Incident", incident_id.to_owned()),
        ("Severity", c.severity.as_str().to_owned()),
    ];
    if let Some(s) = &c.service {
        rows.push(("Service", s.clone()));
    }
    if let Some(e) = &c.environment {
        rows.push(("Environment", e.clone()));
    }
    match (&c.cluster, &c.namespace) {
        (Some(cl), Some(ns)) => rows.push(("Cluster / namespace", format!("{cl} / {ns}"))),
        (Some(cl), None) => rows.push(("Cluster", cl.clone())),
        (None, Some(ns)) => rows.push(("Namespace", ns.clone())),
        (None, None) => {}
    }
    rows
}

fn is_web_link(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn adf_text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn adf_strong(text: &str) -> Value {
    json!({"type": "text", "text": text, "marks": [{"type": "strong"}]})
}

fn adf_para(content: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": content})
}

fn adf_heading(text: &str) -> Value {
    json!({"type": "heading", "attrs": {"level": 3}, "content": [adf_text(text)]})
}

fn adf_list(items: Vec<Vec<Value>>) -> Value {
    json!({
        "type": "bulletList",
        "content": items
            .into_iter()
            .map(|content| json!({"type": "listItem", "content": [adf_para(content)]}))
            .collect::<Vec<_>>(),
    })
}

fn adf_doc(content: Vec<Value>) -> Value {
    json!({"type": "doc", "version": 1, "content": content})
}

/// Jira's `description`: an ADF document.
pub fn jira_description(incident_id: &str, c: &Created) -> Value {
    let mut content = Vec::new();
    let summary = c.summary.trim();
    if !summary.is_empty() {
        content.push(adf_para(vec![adf_text(&cut(summary, MAX_SUMMARY_CHARS))]));
    }
    content.push(adf_list(
        facts_table(incident_id, c)
            .into_iter()
            .map(|(k, v)| vec![adf_strong(&format!("{k}: ")), adf_text(&v)])
            .collect(),
    ));
    if !c.alert_fingerprints.is_empty() {
        content.push(adf_heading("Alert fingerprints"));
        content.push(adf_list(
            c.alert_fingerprints
                .iter()
                .filter(|f| !f.is_empty())
                .take(MAX_LIST_ITEMS)
                .map(|f| vec![json!({"type": "text", "text": f, "marks": [{"type": "code"}]})])
                .collect(),
        ));
    }
    let links: Vec<Vec<Value>> = c
        .links
        .iter()
        .filter(|l| !l.url.is_empty())
        .take(MAX_LIST_ITEMS)
        .map(|l| {
            let text = if l.title.trim().is_empty() {
                l.url.as_str()
            } else {
                l.title.trim()
            };
            if is_web_link(&l.url) {
                vec![json!({
                    "type": "text", "text": text,
                    "marks": [{"type": "link", "attrs": {"href": l.url}}]
                })]
            } else {
                vec![adf_text(&format!("{text}: {}", l.url))]
            }
        })
        .collect();
    if !links.is_empty() {
        content.push(adf_heading("Links"));
        content.push(adf_list(links));
    }
    adf_doc(content)
}

/// Characters markdown would interpret, escaped so a title or summary shows as written.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(
            ch,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '!' | '~'
        ) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// GitHub's issue `body`: the same content as [`jira_description`], in markdown.
pub fn markdown_body(incident_id: &str, c: &Created) -> String {
    let mut out = String::new();
    let summary = c.summary.trim();
    if !summary.is_empty() {
        out.push_str(&md_escape(&cut(summary, MAX_SUMMARY_CHARS)));
        out.push_str("\n\n");
    }
    for (k, v) in facts_table(incident_id, c) {
        out.push_str(&format!("- **{k}:** {}\n", md_escape(&v)));
    }
    if !c.alert_fingerprints.is_empty() {
        out.push_str("\n### Alert fingerprints\n\n");
        for f in c
            .alert_fingerprints
            .iter()
            .filter(|f| !f.is_empty())
            .take(MAX_LIST_ITEMS)
        {
            out.push_str(&format!("- `{}`\n", f.replace('`', "'")));
        }
    }
    let links: Vec<_> = c
        .links
        .iter()
        .filter(|l| !l.url.is_empty())
        .take(MAX_LIST_ITEMS)
        .collect();
    if !links.is_empty() {
        out.push_str("\n### Links\n\n");
        for l in links {
            let text = if l.title.trim().is_empty() {
                l.url.as_str()
            } else {
                l.title.trim()
            };
            if is_web_link(&l.url) {
                let url = l.url.replace(' ', "%20").replace(')', "%29");
                out.push_str(&format!("- [{}]({url})\n", md_escape(text)));
            } else {
                out.push_str(&format!("- {}: {}\n", md_escape(text), md_escape(&l.url)));
            }
        }
    }
    out.push_str(&format!(
        "\n<sub>Opened by sre-integration for incident `{}`.</sub>\n",
        incident_id.replace('`', "'")
    ));
    out
}

/// A comment's content, before rendering: a headline and lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// `Acknowledged by ana at 2026-12-07T09:05:00Z`.
    pub headline: String,
    /// Further text (a resolution, a reason).
    pub body: Option<String>,
    /// The fact's marker ([`fact_marker`]).
    pub marker: String,
}

fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn who(name: &Option<String>) -> String {
    name.as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("someone")
        .to_owned()
}

/// The comment a lifecycle fact makes (`None` for `IncidentCreated`).
pub fn note(fact: &Fact) -> Option<Note> {
    let at = when(fact.occurred_at);
    let (headline, body) = match &fact.body {
        FactBody::IncidentCreated(_) => return None,
        FactBody::IncidentAcknowledged { acknowledged_by } => (
            format!("Acknowledged by {} at {at}.", who(acknowledged_by)),
            None,
        ),
        FactBody::IncidentResolved {
            resolved_by,
            resolution,
        } => (
            format!("Resolved by {} at {at}.", who(resolved_by)),
            resolution.clone(),
        ),
        FactBody::IncidentClosed { closed_by, reason } => (
            format!("Closed by {} at {at}.", who(closed_by)),
            reason.clone(),
        ),
    };
    Some(Note {
        headline: cut(&headline, MAX_TITLE_CHARS * 2),
        body: body
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .map(|b| cut(&b, MAX_SUMMARY_CHARS)),
        marker: fact_marker(&fact.ce_id.replace("--", "-")),
    })
}

impl Note {
    /// Jira's comment `body` (ADF); the marker is the last paragraph, as code.
    pub fn adf(&self) -> Value {
        let mut content = vec![adf_para(vec![adf_strong(&self.headline)])];
        if let Some(b) = &self.body {
            content.push(adf_para(vec![adf_text(b)]));
        }
        content.push(adf_para(vec![
            json!({"type": "text", "text": self.marker, "marks": [{"type": "code"}]}),
        ]));
        adf_doc(content)
    }

    /// GitHub's comment `body`; the marker is an HTML comment.
    pub fn markdown(&self) -> String {
        let mut out = format!("**{}**\n", md_escape(&self.headline));
        if let Some(b) = &self.body {
            out.push('\n');
            out.push_str(&md_escape(b));
            out.push('\n');
        }
        out.push_str(&format!("\n<!-- {} -->\n", self.marker));
        out
    }

    /// Whether a GitHub comment's `body` is this note's.
    pub fn is_in_markdown(&self, body: &str) -> bool {
        body.contains(&format!("<!-- {} -->", self.marker))
    }

    /// Whether a Jira comment's ADF `body` is this note's: one of its text nodes is the marker.
    pub fn is_in_adf(&self, body: &Value) -> bool {
        fn walk(v: &Value, marker: &str, depth: usize) -> bool {
            if depth > 32 {
                return false;
            }
            match v {
                Value::Object(o) => {
                    o.get("text").and_then(Value::as_str) == Some(marker)
                        || o.get("content").is_some_and(|c| walk(c, marker, depth + 1))
                }
                Value::Array(a) => a.iter().any(|x| walk(x, marker, depth + 1)),
                _ => false,
            }
        }
        walk(body, &self.marker, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sre_intents::facts::{FactSeverity, Link};

    fn created() -> Created {
        Created {
            title: "Checkout\n5xx [prod]".into(),
            severity: FactSeverity::Critical,
            summary: "Errors *everywhere*".into(),
            service: Some("checkout".into()),
            environment: Some("prod".into()),
            cluster: Some("c1".into()),
            namespace: Some("shop".into()),
            labels: Default::default(),
            alert_fingerprints: vec!["abc123".into()],
            links: vec![
                Link {
                    title: "Runbook".into(),
                    url: "https://runbooks/checkout".into(),
                },
                Link {
                    title: "evil".into(),
                    url: "javascript:alert(1)".into(),
                },
            ],
        }
    }

    #[test]
    fn titles_are_one_line_and_capped() {
        assert_eq!(title(&created()), "Checkout 5xx [prod]");
        let mut c = created();
        c.title = "x".repeat(400);
        let t = title(&c);
        assert_eq!(t.chars().count(), 255);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn adf_has_every_field_and_links_as_marks() {
        let d = jira_description("inc-1", &created());
        assert_eq!(d["type"], "doc");
        assert_eq!(d["version"], 1);
        let s = d.to_string();
        for want in [
            "Errors *everywhere*",
            "critical",
            "checkout",
            "prod",
            "c1 / shop",
            "abc123",
            "inc-1",
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
        assert!(
            s.contains(r#"{"attrs":{"href":"https://runbooks/checkout"},"type":"link"}"#),
            "{s}"
        );
        assert!(
            !s.contains(r#""href":"javascript"#),
            "only web links are links: {s}"
        );
    }

    #[test]
    fn a_fact_marker_matches_only_its_own_fact() {
        let at = chrono::Utc::now();
        let f = |ce: &str| Fact {
            ce_id: ce.into(),
            incident_id: "inc-1".into(),
            occurred_at: at,
            revision: 2,
            correlation_id: "c".into(),
            traceparent: None,
            body: FactBody::IncidentAcknowledged {
                acknowledged_by: None,
            },
        };
        let n1 = note(&f("f-1")).unwrap();
        let n10 = note(&f("f-10")).unwrap();
        assert!(n1.is_in_markdown(&n1.markdown()));
        assert!(!n1.is_in_markdown(&n10.markdown()), "f-1 is not f-10");
        assert!(n1.is_in_adf(&n1.adf()));
        assert!(!n1.is_in_adf(&n10.adf()));
        assert!(n1.headline.contains("Acknowledged by someone"));
        let odd = note(&f("a--b")).unwrap();
        assert!(
            !odd.markdown().contains("a--b"),
            "no -- inside an HTML comment"
        );
        assert!(odd.is_in_markdown(&odd.markdown()));
    }

    #[test]
    fn markdown_has_the_same_content_escaped() {
        let m = markdown_body("inc-1", &created());
        assert!(m.contains("Errors \\*everywhere\\*"), "{m}");
        assert!(m.contains("- **Cluster / namespace:** c1 / shop"), "{m}");
        assert!(m.contains("- `abc123`"), "{m}");
        assert!(m.contains("[Runbook](https://runbooks/checkout)"), "{m}");
        assert!(!m.contains("](javascript"), "{m}");
    }
}
