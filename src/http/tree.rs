//! The live supervision tree as JSON for `GET /v1/supervision` and `sre-integration status`:
//! each actor's name, state, restarts, last error, and for circuits their state.

use serde::{Deserialize, Serialize};
use sre_actors::providers::{CircuitBoard, CircuitSnapshot};
use sre_supervision::{ChildStatus, Observer};

/// One actor in the tree.
#[derive(Debug, Serialize, Deserialize)]
pub struct Node {
    /// Logical name.
    pub name: String,
    /// `starting`, `running`, `restarting`, `failed` (parked) or `stopped`.
    pub state: String,
    /// Restarts so far.
    pub restarts: u64,
    /// The last failure's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The current ractor id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// When the state last changed.
    pub since: String,
    /// When a restarting or parked actor will be tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// For a provider circuit, its breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitView>,
    /// Supervised children.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub children: Vec<Node>,
}

/// A circuit as the tree shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct CircuitView {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Outcomes in the window.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// State changes since the circuit started.
    pub transitions: u64,
}

impl From<CircuitSnapshot> for CircuitView {
    fn from(s: CircuitSnapshot) -> Self {
        CircuitView {
            state: s.state.label().to_owned(),
            window_calls: s.window_calls,
            window_failures: s.window_failures,
            transitions: s.transitions,
        }
    }
}

/// The tree under `root`; the children of `circuits_supervisor` show their breakers.
pub fn build(
    observer: &Observer,
    circuits: &CircuitBoard,
    root: &str,
    circuits_supervisor: &str,
) -> Node {
    let all = observer.snapshot();
    let running = all.iter().any(|c| c.supervisor == root);
    Node {
        name: root.to_owned(),
        state: if running { "running" } else { "starting" }.to_owned(),
        restarts: 0,
        last_error: None,
        actor_id: None,
        since: String::new(),
        retry_at: None,
        circuit: None,
        children: children_of(&all, circuits, circuits_supervisor, root),
    }
}

fn children_of(
    all: &[ChildStatus],
    circuits: &CircuitBoard,
    circuits_supervisor: &str,
    supervisor: &str,
) -> Vec<Node> {
    all.iter()
        .filter(|c| c.supervisor == supervisor)
        .map(|c| Node {
            name: c.name.clone(),
            state: c.state.as_str().to_owned(),
            restarts: c.restarts,
            last_error: c.last_error.clone(),
            actor_id: c.actor_id.clone(),
            since: c.since.clone(),
            retry_at: c.retry_at.clone(),
            circuit: (supervisor == circuits_supervisor)
                .then(|| circuits.get(&c.name).map(CircuitView::from))
                .flatten(),
            children: children_of(all, circuits, circuits_supervisor, &c.name),
        })
        .collect()
}

/// Renders the tree as indented text for the terminal.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    line(&mut out, node, "", "");
    out
}

fn line(out: &mut String, n: &Node, lead: &str, child_lead: &str) {
    out.push_str(lead);
    out.push_str(&n.name);
    out.push_str("  ");
    out.push_str(&n.state);
    if n.restarts > 0 {
        out.push_str(&format!("  restarts={}", n.restarts));
    }
    if let Some(c) = &n.circuit {
        out.push_str(&format!("  circuit={}", c.state));
    }
    if let Some(at) = &n.retry_at {
        out.push_str(&format!("  retry_at={at}"));
    }
    if let Some(e) = &n.last_error {
        out.push_str(&format!("  last_error={e:?}"));
    }
    out.push('\n');
    for (i, c) in n.children.iter().enumerate() {
        let last = i + 1 == n.children.len();
        let (l, cl) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        line(
            out,
            c,
            &format!("{child_lead}{l}"),
            &format!("{child_lead}{cl}"),
        );
    }
}
