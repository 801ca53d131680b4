//! The tool gate with small real tools that record their calls: approvals (asked, approved,
//! altered, reused, expired, self-approved, denied, redeemed concurrently), roles, schema
//! validation, redaction of planted secrets (output, audit record, logs), the output cap,
//! timeouts, the pending bound, and the audit trail (a failed audit fails the call; the
//! embedded log survives a restart and a torn tail).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sre_actors::sli::scheduler::tokio_clock;
use sre_actors::tools::approvals::ApprovalError;
use sre_actors::tools::audit::{AuditLog, AuditRecord};
use sre_actors::tools::gateway::{DecisionError, GatewayOptions, ToolGateway};
use sre_actors::tools::metrics::ToolMetrics;
use sre_actors::tools::redact::Redactor;
use sre_actors::tools::tool::{
    CallOutcome, Caller, Gate, Role, Tool, ToolError, ToolSpec, APPROVAL_ID_ARG,
};
use sre_intents::IntentRecord;
use sre_sink::embedded::{EmbeddedSink, LogOptions};
use sre_sink::{Durable, OnFatal, Opened, RecentKeys, Sink, SinkError, SinkWriter};

const PLANTED: &str = "planted-Secret-Value-42";

/// A tool that records every call and preview, answering `output`.
struct Recorder {
    name: &'static str,
    write: bool,
    calls: Mutex<Vec<Value>>,
    previews: Mutex<Vec<Value>>,
    output: Value,
    delay: Option<Duration>,
}

impl Recorder {
    fn new(name: &'static str, write: bool, output: Value) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            write,
            calls: Mutex::new(Vec::new()),
            previews: Mutex::new(Vec::new()),
            output,
            delay: None,
        })
    }
    fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }
}

impl Tool for Recorder {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name,
            description: "records its calls",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "cluster": {"type": "string", "minLength": 1},
                    "name": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 0}
                },
                "required": ["cluster", "name"],
                "additionalProperties": false
            }),
            write: self.write,
        }
    }

    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            self.previews.lock().unwrap().push(args.clone());
            Ok(
                json!({"would_restart": args["name"], "env": [{"name": "DB_PASSWORD", "value": PLANTED}]}),
            )
        })
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(args.clone());
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            Ok(self.output.clone())
        })
    }
}

/// An audit sink in memory (or one that refuses every write).
#[derive(Clone, Debug, Default)]
struct MemorySink {
    records: Arc<Mutex<Vec<IntentRecord>>>,
    broken: bool,
}

impl MemorySink {
    fn audit(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(r.value.get()).unwrap())
            .collect()
    }
}

impl Sink for MemorySink {
    fn label(&self) -> &'static str {
        "memory"
    }
    fn open(&self, _: OnFatal) -> Result<Opened, SinkError> {
        if self.broken {
            return Err(SinkError::Io("disk full".into()));
        }
        Ok(Opened {
            writer: Box::new(self.clone()),
            recovered_bytes: 0,
            skipped_lines: 0,
        })
    }
    fn recent_keys(&self, _: Duration) -> Result<RecentKeys, SinkError> {
        Ok(RecentKeys::default())
    }
}

impl SinkWriter for MemorySink {
    fn append(&self, records: Vec<IntentRecord>) -> Durable {
        self.records.lock().unwrap().extend(records);
        Box::pin(async { Ok(()) })
    }
    fn flush(&self, _: Duration) -> Durable {
        Box::pin(async { Ok(()) })
    }
}

fn options() -> GatewayOptions {
    GatewayOptions {
        approval_ttl: Duration::from_secs(900),
        max_pending_approvals: 1000,
        max_output_bytes: 256 * 1024,
        call_timeout: Duration::from_secs(20),
    }
}

fn gateway_with(
    tools: Vec<Arc<dyn Tool>>,
    options: GatewayOptions,
    sink: Arc<dyn Sink>,
) -> ToolGateway {
    ToolGateway::new(
        tools,
        options,
        AuditLog::new(sink, "sre.integration.audit.v1", Duration::from_secs(10)),
        Redactor::new([PLANTED.to_owned()]),
        tokio_clock("2026-12-07T03:00:00Z".parse().unwrap()),
        ToolMetrics::unregistered(),
    )
    .unwrap()
}

struct Fixture {
    gate: Arc<ToolGateway>,
    write: Arc<Recorder>,
    read: Arc<Recorder>,
    sink: MemorySink,
}

fn fixture() -> Fixture {
    fixture_with(options(), None)
}

fn fixture_with(options: GatewayOptions, delay: Option<Duration>) -> Fixture {
    let mut write = Recorder::new("k8s.rollout_restart", true, json!({"restarted": "web"}));
    Arc::get_mut(&mut write).unwrap().delay = delay;
    let read = Recorder::new(
        "k8s.get_resource",
        false,
        json!({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "note": format!("token {PLANTED}")}),
    );
    let sink = MemorySink::default();
    let gate = gateway_with(
        vec![write.clone(), read.clone()],
        options,
        Arc::new(sink.clone()),
    );
    Fixture {
        gate: Arc::new(gate),
        write,
        read,
        sink,
    }
}

fn agent() -> Caller {
    Caller {
        identity: "srecoder".into(),
        role: Role::Agent,
    }
}

fn approver() -> Caller {
    Caller {
        identity: "oncall-alice".into(),
        role: Role::Approver,
    }
}

fn args() -> Value {
    json!({"cluster": "dev", "name": "web"})
}

fn with_approval(mut args: Value, id: &str) -> Value {
    args[APPROVAL_ID_ARG] = json!(id);
    args
}

/// Asks for the write as the agent; returns the approval id.
async fn ask(f: &Fixture) -> String {
    match f
        .gate
        .call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap()
    {
        CallOutcome::ApprovalRequired(r) => r.approval_id,
        other => panic!("expected approval_required, got {other:?}"),
    }
}

fn refusal(r: Result<CallOutcome, ToolError>) -> String {
    match r {
        Err(ToolError::ApprovalRefused(why)) => why,
        other => panic!("expected an approval refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_without_approval_changes_nothing_and_asks() {
    let f = fixture();
    let out = f
        .gate
        .call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap();
    let CallOutcome::ApprovalRequired(req) = out else {
        panic!("{out:?}")
    };
    assert!(f.write.calls().is_empty(), "the write ran without approval");
    assert_eq!(f.write.previews.lock().unwrap().len(), 1);
    assert_eq!(req.tool, "k8s.rollout_restart");
    assert_eq!(req.arguments, args());
    assert_eq!(
        req.arguments_sha256,
        sre_actors::tools::canonical::arguments_sha256(&args())
    );
    assert_eq!(req.preview["would_restart"], "web");
    assert_eq!(req.preview["env"][0]["value"], "[redacted]");
    assert_eq!(req.requested_by, "srecoder");
    assert_eq!(
        req.expires_at,
        "2026-12-07T03:15:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    let pending = f.gate.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request.approval_id, req.approval_id);
    let audit = f.sink.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "approval_required");
    assert_eq!(
        audit[0].approval_id.as_deref(),
        Some(req.approval_id.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn an_approved_write_runs_exactly_once_and_is_audited() {
    let f = fixture();
    let id = ask(&f).await;
    let approved = f
        .gate
        .decide(&approver(), &id, true, Some("go".into()))
        .await
        .unwrap();
    assert_eq!(approved.decided_by.as_deref(), Some("oncall-alice"));
    assert!(f.gate.pending().is_empty());
    let out = f
        .gate
        .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
        .await
        .unwrap();
    let CallOutcome::Done(done) = out else {
        panic!("{out:?}")
    };
    assert_eq!(done.output, json!({"restarted": "web"}));
    // The tool saw the arguments without approval_id, once.
    assert_eq!(f.write.calls(), vec![args()]);
    let reused = f
        .gate
        .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
        .await;
    assert!(refusal(reused).contains("already used"));
    assert_eq!(f.write.calls().len(), 1);
    let outcomes: Vec<(String, String)> = f
        .sink
        .audit()
        .into_iter()
        .map(|r| (r.event, r.outcome))
        .collect();
    let want: Vec<(String, String)> = [
        ("call", "approval_required"),
        ("decision", "approved"),
        ("call", "started"),
        ("call", "done"),
        ("call", "approval_refused"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(outcomes, want);
    let done = &f.sink.audit()[3];
    assert_eq!(done.approver.as_deref(), Some("oncall-alice"));
    assert_eq!(done.approval_id.as_deref(), Some(id.as_str()));
    assert_eq!(done.caller, "srecoder");
}

#[tokio::test(start_paused = true)]
async fn arguments_altered_after_approval_are_refused() {
    let f = fixture();
    let id = ask(&f).await;
    f.gate.decide(&approver(), &id, true, None).await.unwrap();
    let altered = json!({"cluster": "dev", "name": "db", APPROVAL_ID_ARG: id});
    let why = refusal(f.gate.call(&agent(), "k8s.rollout_restart", altered).await);
    assert!(why.contains("other arguments"), "{why}");
    // Key order and spacing do not matter: the canonical form is the same.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{ "{APPROVAL_ID_ARG}": "{id}",  "name": "web", "cluster": "dev" }}"#
    ))
    .unwrap();
    let out = f
        .gate
        .call(&agent(), "k8s.rollout_restart", reordered)
        .await
        .unwrap();
    assert!(matches!(out, CallOutcome::Done(_)));
    assert_eq!(f.write.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_approval_is_bound_to_its_tool() {
    let other = Recorder::new("k8s.delete_resource", true, json!({"deleted": true}));
    let f = fixture();
    let gate = gateway_with(
        vec![f.write.clone(), other.clone()],
        options(),
        Arc::new(MemorySink::default()),
    );
    let CallOutcome::ApprovalRequired(req) = gate
        .call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap()
    else {
        panic!()
    };
    gate.decide(&approver(), &req.approval_id, true, None)
        .await
        .unwrap();
    let why = refusal(
        gate.call(
            &agent(),
            "k8s.delete_resource",
            with_approval(args(), &req.approval_id),
        )
        .await,
    );
    assert!(why.contains("is for tool k8s.rollout_restart"), "{why}");
    assert!(other.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expired_approval_is_refused() {
    let f = fixture();
    let id = ask(&f).await;
    f.gate.decide(&approver(), &id, true, None).await.unwrap();
    tokio::time::advance(Duration::from_secs(900)).await;
    let why = refusal(
        f.gate
            .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
            .await,
    );
    assert!(
        why.contains("expired") || why.contains("no approval"),
        "{why}"
    );
    assert!(f.write.calls().is_empty());

    // Not approved in time: approving after the TTL is refused too.
    let id = ask(&f).await;
    tokio::time::advance(Duration::from_secs(901)).await;
    let e = f
        .gate
        .decide(&approver(), &id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecisionError::Refused(ApprovalError::Unknown(_) | ApprovalError::NotPending { .. })
        ),
        "{e}"
    );
    assert!(f.gate.pending().is_empty());

    // Just before the TTL it is still good.
    let id = ask(&f).await;
    f.gate.decide(&approver(), &id, true, None).await.unwrap();
    tokio::time::advance(Duration::from_secs(899)).await;
    let out = f
        .gate
        .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
        .await
        .unwrap();
    assert!(matches!(out, CallOutcome::Done(_)));
}

#[tokio::test(start_paused = true)]
async fn the_requester_cannot_approve_its_own_write() {
    let f = fixture();
    // An approver asks for a write itself...
    let CallOutcome::ApprovalRequired(req) = f
        .gate
        .call(&approver(), "k8s.rollout_restart", args())
        .await
        .unwrap()
    else {
        panic!()
    };
    // ...and cannot approve it.
    let e = f
        .gate
        .decide(&approver(), &req.approval_id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, DecisionError::Refused(ApprovalError::SelfDecision(_))),
        "{e}"
    );
    let why = refusal(
        f.gate
            .call(
                &approver(),
                "k8s.rollout_restart",
                with_approval(args(), &req.approval_id),
            )
            .await,
    );
    assert!(why.contains("still pending"), "{why}");
    assert!(f.write.calls().is_empty());
    // Another approver can; then only the requester may redeem it.
    let bob = Caller {
        identity: "oncall-bob".into(),
        role: Role::Approver,
    };
    f.gate
        .decide(&bob, &req.approval_id, true, None)
        .await
        .unwrap();
    let why = refusal(
        f.gate
            .call(
                &bob,
                "k8s.rollout_restart",
                with_approval(args(), &req.approval_id),
            )
            .await,
    );
    assert!(why.contains("was asked by"), "{why}");
    assert!(f.write.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_denied_write_is_refused_with_the_reason() {
    let f = fixture();
    let id = ask(&f).await;
    f.gate
        .decide(
            &approver(),
            &id,
            false,
            Some("not during the freeze".into()),
        )
        .await
        .unwrap();
    let why = refusal(
        f.gate
            .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
            .await,
    );
    assert!(
        why.contains("denied by oncall-alice: not during the freeze"),
        "{why}"
    );
    assert!(f.write.calls().is_empty());
    // A decided approval cannot be decided again.
    let e = f
        .gate
        .decide(&approver(), &id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, DecisionError::Refused(ApprovalError::NotPending { .. })),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_cannot_approve_and_unknown_ids_are_refused() {
    let f = fixture();
    let id = ask(&f).await;
    let other_agent = Caller {
        identity: "another-agent".into(),
        role: Role::Agent,
    };
    let e = f
        .gate
        .decide(&other_agent, &id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecisionError::Refused(ApprovalError::NotApprover("agent"))
        ),
        "{e}"
    );
    assert_eq!(f.gate.pending().len(), 1);
    let why = refusal(
        f.gate
            .call(
                &agent(),
                "k8s.rollout_restart",
                with_approval(args(), "nope"),
            )
            .await,
    );
    assert!(why.contains("no approval \"nope\""), "{why}");
    let why = refusal(
        f.gate
            .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
            .await,
    );
    assert!(why.contains("still pending"), "{why}");
    assert!(f.write.calls().is_empty());
    let decisions: Vec<String> = f
        .sink
        .audit()
        .into_iter()
        .filter(|r| r.event == "decision")
        .map(|r| r.outcome)
        .collect();
    assert_eq!(decisions, vec!["not_approver"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redeems_of_one_approval_run_once() {
    let f = fixture_with(options(), Some(Duration::from_millis(50)));
    let id = ask(&f).await;
    f.gate.decide(&approver(), &id, true, None).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (gate, barrier, id) = (f.gate.clone(), barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                gate.call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
                    .await
            })
        })
        .collect();
    let mut done = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(CallOutcome::Done(_)) => done += 1,
            Err(ToolError::ApprovalRefused(why)) => {
                assert!(why.contains("already used"), "{why}");
                refused += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((done, refused), (1, 7));
    assert_eq!(f.write.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn reads_run_at_once_redacted() {
    let f = fixture();
    let out = f
        .gate
        .call(&agent(), "k8s.get_resource", args())
        .await
        .unwrap();
    let CallOutcome::Done(done) = out else {
        panic!("{out:?}")
    };
    assert!(!done.truncated);
    assert_eq!(done.output["data"]["password"], "[redacted]");
    assert_eq!(done.output["note"], "token [redacted]");
    assert_eq!(f.read.calls(), vec![args()]);
    let audit = serde_json::to_string(&f.sink.audit()).unwrap();
    assert!(!audit.contains(PLANTED));
    assert_eq!(f.sink.audit()[0].outcome, "done");
}

/// The logs are captured through a thread-local subscriber, but tracing caches each callsite's
/// interest process-wide: another test registering the same callsite (`tool call`) at the same
/// moment can cache "not interested" and the capture misses the line. So the capture runs alone,
/// in a child process of this test binary.
#[test]
fn planted_secrets_reach_no_output_audit_record_or_log() {
    const CHILD: &str = "SRE_TOOLS_GATE_LOG_CAPTURE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(planted_secrets_alone());
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "planted_secrets_reach_no_output_audit_record_or_log",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}

async fn planted_secrets_alone() {
    use tracing_subscriber::fmt::MakeWriter;
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = fixture();
    // The planted value in the arguments (a name), the preview (an env var), the output.
    let planted_args = json!({"cluster": "dev", "name": PLANTED});
    let CallOutcome::ApprovalRequired(req) = f
        .gate
        .call(&agent(), "k8s.rollout_restart", planted_args.clone())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(req.arguments["name"], "[redacted]");
    // The hash is of the real arguments: the tool gets them unredacted.
    assert_eq!(
        req.arguments_sha256,
        sre_actors::tools::canonical::arguments_sha256(&planted_args)
    );
    f.gate
        .decide(
            &approver(),
            &req.approval_id,
            true,
            Some(format!("ok {PLANTED}")),
        )
        .await
        .unwrap();
    let out = f
        .gate
        .call(
            &agent(),
            "k8s.rollout_restart",
            with_approval(planted_args.clone(), &req.approval_id),
        )
        .await
        .unwrap();
    assert!(matches!(out, CallOutcome::Done(_)));
    assert_eq!(f.write.calls(), vec![planted_args]);
    let read = f
        .gate
        .call(&agent(), "k8s.get_resource", args())
        .await
        .unwrap();
    // A refusal whose reason would echo the arguments.
    let e = f
        .gate
        .call(
            &agent(),
            "k8s.get_resource",
            json!({"cluster": "dev", "name": "x", PLANTED: 1}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    assert!(!e.to_string().contains(PLANTED), "{e}");
    let shown = serde_json::to_string(&(read, f.gate.pending(), f.gate.approval(&req.approval_id)))
        .unwrap();
    assert!(!shown.contains(PLANTED), "{shown}");
    let audit = serde_json::to_string(&f.sink.audit()).unwrap();
    assert!(!audit.contains(PLANTED), "{audit}");
    assert!(!audit.contains("aHVudGVyMg=="), "{audit}");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("tool call"), "{logged}");
    assert!(!logged.contains(PLANTED), "{logged}");
}

#[tokio::test(start_paused = true)]
async fn outputs_over_the_cap_are_cut_and_flagged() {
    let big = Recorder::new(
        "obs.search_logs",
        false,
        json!({"lines": "x".repeat(10_000)}),
    );
    let mut o = options();
    o.max_output_bytes = 2048;
    let gate = gateway_with(vec![big], o, Arc::new(MemorySink::default()));
    let CallOutcome::Done(done) = gate
        .call(&agent(), "obs.search_logs", args())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(done.truncated);
    let Value::String(text) = &done.output else {
        panic!("{:?}", done.output)
    };
    assert_eq!(text.len(), 2048);
    assert!(text.starts_with(r#"{"lines":"xxx"#));
    let small = Recorder::new("obs.get_trace", false, json!({"spans": []}));
    let gate = gateway_with(vec![small], options(), Arc::new(MemorySink::default()));
    let CallOutcome::Done(done) = gate.call(&agent(), "obs.get_trace", args()).await.unwrap()
    else {
        panic!()
    };
    assert!(!done.truncated);
    assert_eq!(done.output, json!({"spans": []}));
}

#[tokio::test(start_paused = true)]
async fn unknown_tools_bad_arguments_and_slow_tools() {
    let f = fixture_with(options(), Some(Duration::from_secs(3600)));
    assert_eq!(
        f.gate.call(&agent(), "k8s.nope", json!({})).await,
        Err(ToolError::UnknownTool("k8s.nope".into()))
    );
    let e = f
        .gate
        .call(&agent(), "k8s.get_resource", json!({"cluster": "dev"}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ToolError::InvalidArguments("the arguments: missing required property \"name\"".into())
    );
    let e = f
        .gate
        .call(
            &agent(),
            "k8s.get_resource",
            json!({"cluster": "dev", "name": "w", APPROVAL_ID_ARG: "x"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    let e = f
        .gate
        .call(&agent(), "k8s.get_resource", json!([1]))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    // A write with bad arguments is refused before any preview or approval.
    let e = f
        .gate
        .call(
            &agent(),
            "k8s.rollout_restart",
            json!({"cluster": "", "name": "w"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    assert!(f.write.previews.lock().unwrap().is_empty());
    assert!(f.gate.pending().is_empty());
    // A tool past tools.call_timeout.
    let id = ask(&f).await;
    f.gate.decide(&approver(), &id, true, None).await.unwrap();
    let e = f
        .gate
        .call(&agent(), "k8s.rollout_restart", with_approval(args(), &id))
        .await
        .unwrap_err();
    assert_eq!(e, ToolError::Timeout(Duration::from_secs(20)));
    let outcomes: Vec<String> = f.sink.audit().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            "unknown_tool",
            "invalid_arguments",
            "invalid_arguments",
            "invalid_arguments",
            "invalid_arguments",
            "approval_required",
            "approved",
            "started",
            "timeout"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn pending_approvals_are_bounded() {
    let mut o = options();
    o.max_pending_approvals = 2;
    let f = fixture_with(o, None);
    ask(&f).await;
    ask(&f).await;
    let e = f
        .gate
        .call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap_err();
    let ToolError::Unavailable { upstream, reason } = e else {
        panic!("{e:?}")
    };
    assert_eq!(upstream, "approvals");
    assert!(
        reason.contains("2 approvals are already pending"),
        "{reason}"
    );
    // Expired ones make room.
    tokio::time::advance(Duration::from_secs(900)).await;
    assert_eq!(f.gate.sweep(), 2);
    ask(&f).await;
    assert_eq!(f.gate.pending().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_audit_write_fails_the_call() {
    let sink = Arc::new(MemorySink {
        broken: true,
        ..MemorySink::default()
    });
    let write = Recorder::new("k8s.rollout_restart", true, json!({}));
    let read = Recorder::new("k8s.get_resource", false, json!({"ok": true}));
    let gate = gateway_with(vec![write.clone(), read.clone()], options(), sink);
    let e = gate
        .call(&agent(), "k8s.get_resource", args())
        .await
        .unwrap_err();
    let ToolError::Unavailable { upstream, reason } = e else {
        panic!("{e:?}")
    };
    assert_eq!(upstream, "audit");
    assert!(reason.contains("disk full"), "{reason}");
    // A write cannot even be asked: no approval is left behind.
    let e = gate
        .call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Unavailable { .. }), "{e}");
    assert!(gate.pending().is_empty());
    assert!(write.calls().is_empty());
}

#[tokio::test]
async fn the_embedded_audit_log_survives_a_restart_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("sre.integration.audit.v1");
    let sink =
        || -> Arc<dyn Sink> { Arc::new(EmbeddedSink::new(log_dir.clone(), LogOptions::default())) };
    {
        let write = Recorder::new("k8s.rollout_restart", true, json!({}));
        let gate = gateway_with(vec![write], options(), sink());
        let id = match gate
            .call(&agent(), "k8s.rollout_restart", args())
            .await
            .unwrap()
        {
            CallOutcome::ApprovalRequired(r) => r.approval_id,
            o => panic!("{o:?}"),
        };
        gate.decide(&approver(), &id, false, None).await.unwrap();
    }
    // A crash mid-append leaves half a line.
    let (_, segment) = sre_sink::embedded::segments(&log_dir)
        .unwrap()
        .pop()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut f, br#"{"offset":2,"timestamp":1,"topic":"sre.integ"#).unwrap();
    drop(f);
    let read = Recorder::new("k8s.get_resource", false, json!({}));
    let gate = gateway_with(vec![read], options(), sink());
    gate.call(&agent(), "k8s.get_resource", args())
        .await
        .unwrap();
    let scan = sre_sink::embedded::read_since(&log_dir, 0).unwrap();
    let records: Vec<AuditRecord> = scan
        .records
        .iter()
        .map(|r| serde_json::from_value(r.value.clone()).unwrap())
        .collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["approval_required", "denied", "done"]);
    assert_eq!(scan.skipped_lines, 0, "the torn tail was cut on open");
    assert_eq!(scan.records[2].offset, 2);
    assert_eq!(scan.records[1].header("audit_event"), Some("decision"));
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_expired_approvals_and_the_gauge_follows() {
    use sre_actors::tools::sweeper::{ApprovalSweeper, SweeperArgs};
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ToolMetrics::new(&mut registry);
    let write = Recorder::new("k8s.rollout_restart", true, json!({}));
    let gate = Arc::new(
        ToolGateway::new(
            vec![write],
            options(),
            AuditLog::new(
                Arc::new(MemorySink::default()),
                "sre.integration.audit.v1",
                Duration::from_secs(10),
            ),
            Redactor::new([]),
            tokio_clock("2026-12-07T03:00:00Z".parse().unwrap()),
            metrics,
        )
        .unwrap(),
    );
    let gauge = |registry: &prometheus_client::registry::Registry| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.lines()
            .find(|l| l.starts_with("sre_tools_approvals_pending "))
            .unwrap()
            .to_owned()
    };
    gate.call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap();
    gate.call(&agent(), "k8s.rollout_restart", args())
        .await
        .unwrap();
    assert_eq!(gauge(&registry), "sre_tools_approvals_pending 2");
    let (actor, handle) = ractor::Actor::spawn(
        None,
        ApprovalSweeper,
        SweeperArgs {
            gateway: gate.clone(),
            interval: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    // Nobody touches the store: only the sweeper can bring the gauge down.
    let mut swept = false;
    for _ in 0..40 {
        tokio::time::advance(Duration::from_secs(30)).await;
        tokio::task::yield_now().await;
        if gauge(&registry) == "sre_tools_approvals_pending 0" {
            swept = true;
            break;
        }
    }
    assert!(swept, "{}", gauge(&registry));
    actor.stop(None);
    handle.await.unwrap();
}
