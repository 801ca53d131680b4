//! A child that panics on every start is restarted with growing backoff, parked after its
//! intensity limit and retried after the cool-down, while its sibling keeps answering and the
//! metrics and the tree say so. Paused tokio time: the test never sleeps for real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sre_supervision::{
    ChildSpec, ChildState, Observer, RestartPolicy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use tokio::time::Instant;

/// Panics in `post_start` every time; records when each start happened.
struct Crasher;

impl Actor for Crasher {
    type Msg = ();
    type State = ();
    type Arguments = Arc<Mutex<Vec<Instant>>>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        starts: Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        starts.lock().unwrap().push(Instant::now());
        Ok(())
    }

    async fn post_start(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        panic!("upstream exploded");
    }
}

/// Answers pings.
struct Echo;

impl Actor for Echo {
    type Msg = RpcReplyPort<&'static str>;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        reply: Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send("pong");
        Ok(())
    }
}

fn policy() -> RestartPolicy {
    RestartPolicy {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(30),
        jitter: 0.2,
        max_restarts: 5,
        period: Duration::from_secs(60),
        cool_down: Duration::from_secs(300),
    }
}

async fn echo_of(root: &ActorRef<SupervisorMsg>) -> ActorRef<RpcReplyPort<&'static str>> {
    let cell = ractor::call!(root, SupervisorMsg::Lookup, "echo".to_string())
        .unwrap()
        .expect("echo runs");
    cell.into()
}

#[tokio::test(start_paused = true)]
async fn crashing_child_backs_off_parks_and_never_disturbs_its_sibling() {
    let mut registry = Registry::default();
    let observer = Observer::new(&mut registry);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = starts.clone();
    let spec = SupervisorSpec::new("root", policy(), observer.clone())
        .child(ChildSpec::actor("echo", || (Echo, ())))
        .child(ChildSpec::actor("crasher", move || (Crasher, s.clone())));
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();

    let echo = echo_of(&root).await;
    let echo_id = echo.get_id();

    // 1 start + 5 restarts all fail within a few seconds; the 6th failure parks it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let times = starts.lock().unwrap().clone();
    assert_eq!(times.len(), 6, "one start and five restarts before parking");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        assert!(w[1] > w[0], "backoff grows: {gaps:?}");
    }
    assert!(
        gaps[0] >= Duration::from_millis(80) && gaps[0] <= Duration::from_millis(120),
        "{gaps:?}"
    );

    let status = observer.child("root", "crasher").unwrap();
    assert_eq!(status.state, ChildState::Failed);
    assert_eq!(status.restarts, 5);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("upstream exploded"),
        "{status:?}"
    );
    assert!(status.retry_at.is_some());

    // The sibling was never restarted and still answers.
    assert_eq!(ractor::call!(echo, |r| r).unwrap(), "pong");
    assert_eq!(echo_of(&root).await.get_id(), echo_id);
    assert_eq!(observer.child("root", "echo").unwrap().restarts, 0);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            r#"sre_supervisor_child_restarts_total{supervisor="root",child="crasher"} 5"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"sre_supervisor_child_parked{supervisor="root",child="crasher"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sre_supervisor_child_up{supervisor="root",child="crasher"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sre_supervisor_child_up{supervisor="root",child="echo"} 1"#),
        "{text}"
    );

    // Parked for the cool-down: nothing happens for almost five minutes...
    tokio::time::sleep(Duration::from_secs(280)).await;
    assert_eq!(starts.lock().unwrap().len(), 6);
    // ...then it is tried again with a fresh intensity budget.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(starts.lock().unwrap().len() >= 7);
    assert_eq!(ractor::call!(echo, |r| r).unwrap(), "pong");

    root.stop_and_wait(None, None).await.unwrap();
    assert_eq!(
        observer.child("root", "echo").unwrap().state,
        ChildState::Stopped
    );
}

/// Exits cleanly on its first message; a permanent child is restarted all the same.
struct Quitter;

impl Actor for Quitter {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, me: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        me.stop(Some("done".into()));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn nested_supervisors_restart_an_exited_child_and_stop_top_down() {
    let observer = Observer::default();
    let inner = SupervisorSpec::new("inner", policy(), observer.clone())
        .child(ChildSpec::actor("quitter", || (Quitter, ())));
    let spec = SupervisorSpec::new("outer", policy(), observer.clone())
        .child(ChildSpec::supervisor(inner));
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();

    let inner_ref: ActorRef<SupervisorMsg> =
        ractor::call!(root, SupervisorMsg::Lookup, "inner".to_string())
            .unwrap()
            .unwrap()
            .into();
    let quitter: ActorRef<()> =
        ractor::call!(inner_ref, SupervisorMsg::Lookup, "quitter".to_string())
            .unwrap()
            .unwrap()
            .into();
    quitter.cast(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let q = observer.child("inner", "quitter").unwrap();
    assert_eq!(q.state, ChildState::Running);
    assert_eq!(q.restarts, 1);
    assert!(q.last_error.unwrap().contains("exited unexpectedly: done"));
    assert_eq!(
        observer.child("outer", "inner").unwrap().restarts,
        0,
        "the failure stayed inside"
    );

    let children = ractor::call!(inner_ref, SupervisorMsg::Children).unwrap();
    assert_eq!(children.len(), 1);

    root.stop_and_wait(None, None).await.unwrap();
    assert_eq!(
        observer.child("inner", "quitter").unwrap().state,
        ChildState::Stopped
    );
    assert_eq!(
        observer.child("outer", "inner").unwrap().state,
        ChildState::Stopped
    );
}
