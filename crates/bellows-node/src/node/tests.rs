//! The loop without sockets or processes: a node over a stack with no listener (so the
//! proxy binds nothing) and groups at desired 0 (so nothing is launched), a `Call` in,
//! and its reply and recorded events out.

use super::*;
use crate::api::Call;

/// A node over `stack`, recording into a fresh state directory, and the event stream.
async fn node(stack: &str) -> (Node, broadcast::Receiver<(i64, Event)>) {
    node_of(bellows_core::stack::parse(stack).unwrap_or_else(|d| panic!("{d:?}"))).await
}

/// A node over a stack built in code (`Stack::empty`).
async fn node_of(stack: Stack) -> (Node, broadcast::Receiver<(i64, Event)>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let state_dir = std::env::temp_dir().join(format!(
        "bellows-node-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    let (proc_tx, _) = mpsc::unbounded_channel();
    let (proxy_tx, _) = mpsc::unbounded_channel();
    let proxy = Proxy::start(&stack, None, proxy_tx).await.unwrap();
    let provider = Provider::new(
        PathBuf::from("/bin/false"),
        &state_dir,
        stack.instance_network,
        stack.namespace_network,
        "127.0.0.1:9".parse().unwrap(),
        None,
        proc_tx,
    )
    .unwrap();
    let (events, rx) = broadcast::channel(64);
    let now = Time::from_millis(1_000_000);
    let tables =
        std::sync::Arc::new(crate::tables::Tables::open(&state_dir.join("dynamodb.db")).unwrap());
    let node = Node {
        groups: stack
            .groups
            .iter()
            .map(|g| (g.name.clone(), Group::new(g)))
            .collect(),
        zones_out: BTreeSet::new(),
        owner: HashMap::new(),
        ids: IdGen::new(1),
        provider,
        proxy,
        deleting: BTreeMap::new(),
        started_empty: false,
        draining: HashMap::new(),
        stopping: false,
        store: Store::open(&state_dir.join("state.db")).unwrap(),
        resources: crate::resources::Resources::open(&state_dir.join("state.db"), &stack.name)
            .unwrap(),
        started: now,
        state_dir,
        control: "127.0.0.1:1".parse().unwrap(),
        cgroups: false,
        metrics: MetricStore::default(),
        deltas: Deltas::default(),
        listener_lbs: BTreeMap::new(),
        scaler: Scaler::new(
            stack.alarms.clone(),
            stack.policies.clone(),
            stack.scheduled.clone(),
            now,
        ),
        warmups: warmups(&stack),
        alarm_history: HashMap::new(),
        instance_tokens: HashMap::new(),
        token: "token".to_owned(),
        metadata: HashMap::new(),
        instance_face: axum::Router::new(),
        sessions: Default::default(),
        aws_region: "us-east-1".to_owned(),
        dynamo_metrics: Default::default(),
        tables,
        events,
        base: stack.clone(),
        stack,
    };
    (node, rx)
}

const STACK: &str = r#"
[stack]
name = "loop"
[groups.web]
min = 0
max = 2
desired = 0
[groups.web.launch]
command = ["x"]
"#;

fn operator() -> Actor {
    Actor {
        name: "operator".to_owned(),
        source: "cli".to_owned(),
        action: None,
    }
}

/// Every event recorded so far, oldest first.
fn recorded(rx: &mut broadcast::Receiver<(i64, Event)>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok().map(|(_, e)| e)).collect()
}

fn set_capacity(
    group: &str,
    min: Option<u32>,
    desired: Option<u32>,
) -> (
    Call,
    oneshot::Receiver<Result<bellows_core::event::Capacity, ApiError>>,
) {
    let (reply, rx) = oneshot::channel();
    let call = Call::SetCapacity {
        group: group.to_owned(),
        min,
        max: None,
        desired,
        actor: operator(),
        reply,
    };
    (call, rx)
}

#[tokio::test]
async fn a_capacity_call_changes_the_group_replies_and_records_the_change_and_its_audit() {
    let (mut node, mut rx) = node(STACK).await;
    let (call, mut reply) = set_capacity("web", Some(1), None);
    node.on_call(call);
    node.flush();
    let cap = reply.try_recv().unwrap().unwrap();
    assert_eq!((cap.min, cap.max, cap.desired), (1, 2, 1));
    let events = recorded(&mut rx);
    let audit = events
        .iter()
        .find_map(|e| match e {
            Event::Audit { record } => Some(record),
            _ => None,
        })
        .expect("an audit record");
    assert_eq!(audit.action, "UpdateAutoScalingGroup");
    assert_eq!(audit.target, "group/web");
    assert_eq!(audit.actor, "operator");
    assert_eq!(audit.source, "cli");
    assert_eq!(audit.result, "ok");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Capacity { group, after, .. } if group == "web" && after.desired == 1
        )),
        "{events:?}"
    );
    // The group now wants one instance: the loop's next step would launch it.
    assert_eq!(node.groups["web"].capacity().desired, 1);
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

#[tokio::test]
async fn a_refused_call_replies_with_the_error_and_is_audited_with_it() {
    let (mut node, mut rx) = node(STACK).await;
    let (call, mut reply) = set_capacity("web", None, Some(5));
    node.on_call(call);
    node.flush();
    let error = reply.try_recv().unwrap().unwrap_err();
    assert_eq!(
        (error.status, error.code.as_str()),
        (409, "invalid_capacity")
    );
    let (call, mut reply) = set_capacity("nope", None, Some(1));
    node.on_call(call);
    let error = reply.try_recv().unwrap().unwrap_err();
    assert_eq!((error.status, error.code.as_str()), (404, "not_found"));
    let results: Vec<String> = recorded(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            Event::Audit { record } => Some(format!("{} {}", record.target, record.result)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results[0].starts_with("group/web invalid_capacity: "),
        "{results:?}"
    );
    assert!(
        results[1].starts_with("group/nope not_found: "),
        "{results:?}"
    );
    // Nothing changed.
    assert_eq!(node.groups["web"].capacity().desired, 0);
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

#[tokio::test]
async fn reads_reply_from_the_loops_state_and_record_nothing() {
    let (mut node, mut rx) = node(STACK).await;
    let (reply, mut status) = oneshot::channel();
    node.on_call(Call::Status(reply));
    let status = status.try_recv().unwrap();
    assert_eq!(status.stack, "loop");
    assert_eq!(status.groups.len(), 1);
    assert_eq!(
        (status.groups[0].name.as_str(), status.groups[0].desired),
        ("web", 0)
    );
    let (reply, mut instances) = oneshot::channel();
    node.on_call(Call::Instances(reply));
    assert!(instances.try_recv().unwrap().is_empty());
    assert!(recorded(&mut rx).is_empty());
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

#[tokio::test]
async fn a_cold_start_wakes_the_group_and_bellows_audits_it() {
    let stack = r#"
[stack]
name = "loop"
[target_groups.web]
[groups.web]
min = 0
max = 2
desired = 0
target_groups = ["web"]
[groups.web.launch]
command = ["x"]
"#;
    let (mut node, mut rx) = node(stack).await;
    node.on_proxy(ProxyEvent::ColdStart {
        target_group: "web".to_owned(),
    });
    node.flush();
    assert_eq!(node.groups["web"].capacity().desired, 1);
    let audits: Vec<(String, String, String)> = recorded(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            Event::Audit { record } => Some((record.actor, record.action, record.target)),
            _ => None,
        })
        .collect();
    assert_eq!(
        audits,
        [(
            "bellows".to_owned(),
            "SetDesiredCapacity".to_owned(),
            "group/web".to_owned()
        )]
    );
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

#[tokio::test]
async fn a_resource_change_is_audited_a_failed_one_rolled_back_and_a_read_changes_nothing() {
    use crate::resources::Resources;
    let (mut node, mut rx) = node(STACK).await;
    let actor = Actor {
        name: "AKIATEST".to_owned(),
        source: "aws".to_owned(),
        action: Some("CreateVpc".to_owned()),
    };
    let (call, answer) = Call::resources(Some(actor.clone()), |r: &mut Resources| {
        r.put("vpc", "vpc-1", serde_json::json!({ "vpcId": "vpc-1" }))?;
        Ok(7u32)
    });
    node.on_call(call);
    assert_eq!(answer.await.unwrap(), 7);
    // A failed change leaves nothing behind.
    let (call, answer) = Call::resources(Some(actor), |r: &mut Resources| -> Result<(), _> {
        r.put("vpc", "vpc-2", serde_json::json!({}))?;
        Err(bellows_aws::AwsError::new(400, "DependencyViolation", "no"))
    });
    node.on_call(call);
    assert_eq!(answer.await.unwrap_err().code, "DependencyViolation");
    // A read that changes is refused and undone.
    let (call, answer) = Call::resources(None, |r: &mut Resources| {
        r.delete("vpc", "vpc-1")?;
        Ok(())
    });
    node.on_call(call);
    assert_eq!(answer.await.unwrap_err().status, 500);
    let (call, answer) = Call::resources(None, |r: &mut Resources| {
        Ok(r.all().iter().map(|r| r.id.clone()).collect::<Vec<_>>())
    });
    node.on_call(call);
    assert_eq!(answer.await.unwrap(), ["vpc-1"]);
    node.flush();
    let audits: Vec<String> = recorded(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            Event::Audit { record } => Some(format!(
                "{} {} {} {}",
                record.source, record.action, record.target, record.result
            )),
            _ => None,
        })
        .collect();
    assert_eq!(audits, ["aws CreateVpc aws/vpc/vpc-1 ok"]);
    let kept = Resources::open(&node.state_dir.join("state.db"), "loop").unwrap();
    assert_eq!(kept.all().len(), 1);
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

/// A stack named `loop` with a listener on a free port, its target group, and group
/// `web` (desired 0) behind it.
const SERVED: &str = r#"
[stack]
name = "loop"
[target_groups.web]
[listeners.http]
address = "127.0.0.1:0"
default = { forward = "web" }
[groups.web]
min = 0
max = 2
desired = 0
target_groups = ["web"]
[groups.web.launch]
command = ["x"]
"#;

#[tokio::test]
async fn an_empty_node_takes_a_stack_and_gives_it_all_back() {
    let mut empty = Stack::empty("loop").unwrap();
    empty.control = "127.0.0.1:1".parse().unwrap();
    let (mut node, _rx) = node_of(empty.clone()).await;
    node.started_empty = true;
    let now = Time::from_millis(1_000_000);
    // A file's own control address gives way to the node's command line.
    let served = bellows_core::stack::parse(SERVED).unwrap();
    assert_ne!(served.control, node.stack.control);
    let applied = node.apply_stack(served, false, &operator(), now).unwrap();
    assert_eq!(applied["applied"], true, "{applied}");
    assert_eq!(node.proxy.listener_addrs().len(), 1);
    assert!(node.groups.contains_key("web"));
    assert_eq!(node.stack.control, empty.control);

    // Another name is refused, saying how to start the node for it.
    let other = bellows_core::stack::parse(&SERVED.replace("\"loop\"", "\"other\"")).unwrap();
    let err = node
        .apply_stack(other, false, &operator(), now)
        .unwrap_err();
    assert!(
        err.message.contains("bellows up --empty --name other"),
        "{}",
        err.message
    );

    // Back to nothing: the listener closes, the group (without instances) is gone.
    node.apply_stack(empty, false, &operator(), now).unwrap();
    assert!(node.proxy.listener_addrs().is_empty());
    assert!(node.groups.is_empty());
    assert!(node.deleting.is_empty());
}

/// Group `web` of `stack` with one instance launched at `at` and in service since, owned
/// by the node as a launch through `execute` would leave it (without a process).
fn in_service_since(node: &mut Node, at: Time) -> InstanceId {
    let g = node.groups.get_mut("web").unwrap();
    g.set_capacity(None, None, Some(g.capacity().desired + 1), at, "test")
        .unwrap();
    let id = g
        .plan(at, &mut node.ids)
        .into_iter()
        .find_map(|c| match c {
            Command::Launch { instance, .. } => Some(instance),
            _ => None,
        })
        .expect("a launch");
    g.on_running(&id, at);
    node.owner.insert(id.clone(), "web".to_owned());
    id
}

#[tokio::test]
async fn a_target_found_unhealthy_after_the_grace_period_makes_its_instance_unhealthy_and_is_audited()
 {
    let stack = SERVED.replace(
        "target_groups = [\"web\"]\n[groups.web.launch]",
        "target_groups = [\"web\"]\nhealth_check_type = \"ELB\"\nhealth_check_grace_period = \"60s\"\n[groups.web.launch]",
    );
    let (mut node, mut rx) = node(&stack).await;
    let now = clock::now();
    let old = in_service_since(&mut node, Time::from_millis(now.as_millis() - 600_000));
    let young = in_service_since(&mut node, now);
    node.flush();
    recorded(&mut rx);
    for id in [&old, &young] {
        node.on_proxy(ProxyEvent::TargetHealth {
            target_group: "web".to_owned(),
            instance: id.clone(),
            from: TargetState::Healthy,
            to: TargetState::Unhealthy,
            reason: None,
        });
    }
    node.flush();
    let health = |id: &InstanceId| {
        node.groups["web"]
            .instances()
            .find(|i| &i.id == id)
            .map(|i| i.health)
    };
    // The instance past its grace period is unhealthy (the group replaces it); the one
    // within it is left alone, as EC2 Auto Scaling does.
    assert_eq!(health(&old), Some(Health::Unhealthy));
    assert_eq!(health(&young), Some(Health::Healthy));
    let events = recorded(&mut rx);
    let audits: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Audit { record } => Some(format!(
                "{} {} {}",
                record.actor, record.action, record.target
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        audits,
        [format!("bellows SetInstanceHealth instance/{old}")]
    );
    // Both transitions are recorded as the load balancer saw them.
    let seen = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TargetHealth {
                    to: TargetState::Unhealthy,
                    ..
                }
            )
        })
        .count();
    assert_eq!(seen, 2);
    let _ = std::fs::remove_dir_all(&node.state_dir);
}

#[tokio::test]
async fn a_drained_instance_leaves_the_draining_list_once_and_an_unknown_one_is_ignored() {
    let (mut node, _rx) = node(STACK).await;
    let id = InstanceId::parse("i-0123456789abcdef0").unwrap();
    node.draining.insert(id.clone(), Duration::from_secs(5));
    node.on_proxy(ProxyEvent::Drained {
        instance: id.clone(),
        timed_out: false,
    });
    assert!(node.draining.is_empty());
    // A second report, or one for an instance bellows never drained, changes nothing.
    node.on_proxy(ProxyEvent::Drained {
        instance: id,
        timed_out: true,
    });
    assert!(node.draining.is_empty());
    let _ = std::fs::remove_dir_all(&node.state_dir);
}
