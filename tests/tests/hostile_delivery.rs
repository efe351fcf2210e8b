//! Hostile subscribers and poison events (issue 9, delivery rows): replies cannot amplify,
//! poison events are parked instead of blocking their key or the window, and `herald parked`
//! lists, shows, redrives and purges them on a stopped and on a running Herald.

use std::time::Duration;

use herald_tests::fixtures::structured_with;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::replicas::metric;
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const CLI: Duration = Duration::from_secs(60);

async fn publish(herald: &Herald, id: &str, ty: &str) {
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured_with(id, ty, &json!({})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// Trigger `default/{name}` with no retries (a poison event is parked at once).
fn no_retry_trigger(name: &str, uri: &str) -> Value {
    let mut t = trigger(name, "default", uri);
    t["spec"]["delivery"] = json!({"retry": 0, "timeout": "PT5S"});
    t
}

/// 400 for events whose id starts with `poison`, 200 for the others.
fn refuse_poison(sub: &Subscriber) {
    sub.set_script(|r| {
        if r.attr("id").is_some_and(|id| id.starts_with("poison")) {
            Reply::status(400).body("no")
        } else {
            Reply::status(200)
        }
    });
}

async fn wait_metric(herald: &Herald, prefix: &str, at_least: u64) {
    eventually(WAIT, prefix, || async {
        (metric(herald, prefix).await >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_reply_is_refused_so_one_event_is_one_delivery() {
    let sub = Subscriber::start().await;
    let batch = json!([
        {"specversion": "1.0", "id": "r1", "source": "/loop", "type": "amplify"},
        {"specversion": "1.0", "id": "r2", "source": "/loop", "type": "amplify"}
    ]);
    sub.set_script(move |_| {
        Reply::status(200)
            .header("content-type", "application/cloudevents-batch+json")
            .body(batch.to_string())
    });
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]),
    )
    .await;
    publish(&herald, "seed", "amplify").await;
    wait_metric(
        &herald,
        "herald_replies_rejected_total{trigger=\"default/t\",reason=\"batch\"}",
        1,
    )
    .await;
    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        got.len(),
        1,
        "exactly one delivery: {:?}",
        got.iter().map(|r| r.id()).collect::<Vec<_>>()
    );
    assert_eq!(
        metric(
            &herald,
            "herald_deliveries_total{trigger=\"default/t\",outcome=\"delivered\"}"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ordered_trigger_parks_a_poison_event_and_delivers_the_rest_of_its_key() {
    let sub = Subscriber::start().await;
    refuse_poison(&sub);
    let mut t = no_retry_trigger("ordered", &sub.url("/"));
    t["metadata"]["annotations"] = json!({"kafka.eventing.knative.dev/delivery.order": "ordered"});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    // No partitionkey: all three share the one empty key.
    for id in ["poison-1", "after-1", "after-2"] {
        publish(&herald, id, "t").await;
    }
    let got = sub.wait_for(3, WAIT).await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        ["poison-1", "after-1", "after-2"],
        "in order, nothing blocked"
    );
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/ordered\"}",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_window_of_poison_events_does_not_stop_an_unordered_trigger() {
    let sub = Subscriber::start().await;
    refuse_poison(&sub);
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t", &sub.url("/"))]),
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let poison: Vec<Value> = (0..300)
        .map(|n| structured_with(&format!("poison-{n}"), "t", &json!({})))
        .collect();
    for chunk in poison.chunks(100) {
        let r = client.post_batch(&url, chunk).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for n in 0..5 {
        publish(&herald, &format!("good-{n}"), "t").await;
    }
    eventually(WAIT, "the good events", || async {
        let good = sub
            .requests()
            .iter()
            .filter(|r| r.id().starts_with("good-"))
            .count();
        (good == 5).then_some(())
    })
    .await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t\"}",
        300,
    )
    .await;
}

/// Broker `default`, trigger `t1` (refuses poison) and trigger `t2` (takes everything).
async fn two_triggers(options: HeraldOptions) -> (Herald, Subscriber, Subscriber) {
    let (sub1, sub2) = (Subscriber::start().await, Subscriber::start().await);
    refuse_poison(&sub1);
    let manifests = yaml(&[
        broker("default"),
        no_retry_trigger("t1", &sub1.url("/")),
        no_retry_trigger("t2", &sub2.url("/")),
    ]);
    let herald = Herald::start_with("embedded", &manifests, options).await;
    (herald, sub1, sub2)
}

fn ids_of(sub: &Subscriber, id: &str) -> usize {
    sub.requests().iter().filter(|r| r.id() == id).count()
}

async fn parked_cli(herald: &Herald, args: &[&str]) -> String {
    let data_dir = herald.data_dir().to_string_lossy().into_owned();
    let mut all = vec!["parked"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--trigger",
        "default/t1",
        "--data-dir",
        &data_dir,
        "--wait-ms",
        "300",
    ]);
    let out = run_cli(&all, CLI).await;
    assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_parked_on_a_stopped_herald_lists_shows_redrives_to_one_trigger_and_purges() {
    let (mut herald, sub1, sub2) = two_triggers(HeraldOptions::default()).await;
    publish(&herald, "poison-a", "t").await;
    publish(&herald, "poison-b", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        2,
    )
    .await;
    sub2.wait_for(2, WAIT).await;
    let (status, _) = herald.terminate().await;
    assert!(status.success());

    let listed = parked_cli(&herald, &["list", "--limit", "10"]).await;
    let events: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{listed}");
    assert_eq!(events[0]["id"], "poison-a");
    assert_eq!(events[0]["knativeerrorcode"], "400");
    assert!(
        events[0]["knativeerrordest"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1")
    );
    let limited = parked_cli(&herald, &["list", "--limit", "1"]).await;
    assert_eq!(limited.lines().count(), 1);
    let shown = parked_cli(&herald, &["show", "--id", "poison-b"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["id"],
        "poison-b"
    );

    // Redrive poison-a (the subscriber now takes it), purge poison-b.
    sub1.set_script(|_| Reply::status(200));
    assert_eq!(
        parked_cli(&herald, &["redrive", "--id", "poison-a"])
            .await
            .trim(),
        "poison-a"
    );
    assert_eq!(
        parked_cli(&herald, &["purge", "--id", "poison-b"])
            .await
            .trim(),
        "poison-b"
    );
    assert_eq!(parked_cli(&herald, &["list"]).await, "", "the lot is empty");

    let before = ids_of(&sub1, "poison-a");
    herald.restart().await;
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-a") > before).then_some(())
    })
    .await;
    sub1.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        ids_of(&sub1, "poison-b"),
        1,
        "the purged event never came back"
    );
    assert_eq!(
        ids_of(&sub2, "poison-a"),
        1,
        "redrive reached trigger t1 only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_parked_on_a_running_herald_goes_through_the_token_protected_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-admin-token-for-tests\n").unwrap();
    let token_arg = token_file.to_string_lossy().into_owned();
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token_arg.clone()],
        ..HeraldOptions::default()
    };
    let (herald, sub1, sub2) = two_triggers(options).await;
    publish(&herald, "poison-r", "t").await;
    publish(&herald, "poison-p", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        2,
    )
    .await;

    let client = Client::new();
    let unauthenticated = client
        .get(&herald.url("/admin/triggers/default/t1/parked"))
        .await;
    assert_eq!(unauthenticated.status, 401);
    let url = herald.url("");
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec!["parked".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(
            [
                "--trigger",
                "default/t1",
                "--url",
                &url,
                "--admin-token-file",
                &token_arg,
            ]
            .map(String::from),
        );
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = run_cli(&refs, CLI).await;
            assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
            out.stdout
        }
    };
    let listed = cli(&["list"]).await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("poison-r") && listed.contains("poison-p"));
    let shown = cli(&["show", "--id", "poison-p"]).await;
    assert!(shown.contains("\"knativeerrorcode\": \"400\""), "{shown}");

    sub1.set_script(|_| Reply::status(200));
    assert_eq!(
        cli(&["redrive", "--id", "poison-r"]).await.trim(),
        "poison-r"
    );
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-r") == 2).then_some(())
    })
    .await;
    assert_eq!(cli(&["purge", "--all"]).await.trim(), "poison-p");
    assert_eq!(cli(&["list"]).await, "");
    sub1.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        ids_of(&sub2, "poison-r"),
        1,
        "redrive reached trigger t1 only"
    );
    assert_eq!(ids_of(&sub1, "poison-p"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_there_is_no_admin_endpoint() {
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t1", &sub.url("/"))]),
    )
    .await;
    let r = Client::new()
        .get(&herald.url("/admin/triggers/default/t1/parked"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_no_trigger_once_all_are_subscribed() {
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t1", &sub.url("/"))]),
    )
    .await;
    let r = Client::new().get(&herald.url("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        metric(&herald, "herald_trigger_subscribed{trigger=\"default/t1\"}").await,
        2,
        "its topic and its redrive topic"
    );
}

/// Deletes JetStream consumer `consumer` of `stream` with the raw NATS protocol (`$JS.API`).
async fn delete_nats_consumer(url: &str, stream: &str, consumer: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = url.trim_start_matches("nats://");
    let stream_io = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to nats");
    let (read, mut write) = stream_io.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(info.starts_with("INFO"), "{info}");
    let subject = format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}");
    let commands = format!(
        "CONNECT {{\"verbose\":false,\"headers\":false}}\r\nSUB _INBOX.del 1\r\nPUB {subject} _INBOX.del 0\r\n\r\n"
    );
    write.write_all(commands.as_bytes()).await.unwrap();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("an answer from nats")
            .unwrap()
            .unwrap_or_default();
        if line.starts_with("PING") {
            write.write_all(b"PONG\r\n").await.unwrap();
        } else if line.starts_with("MSG") {
            return lines.next_line().await.unwrap().unwrap_or_default();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_consumer_deleted_under_a_trigger_is_recreated() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        &nats.url(),
        &yaml(&[broker("default"), no_retry_trigger("t", &sub.url("/"))]),
    )
    .await;
    publish(&herald, "before", "t").await;
    sub.wait_for(1, WAIT).await;
    let answer = delete_nats_consumer(
        &nats.url(),
        "knative-broker-default-default",
        "knative-trigger-default-t",
    )
    .await;
    assert!(answer.contains("\"success\":true"), "{answer}");
    // The dispatcher gives up on the dead subscription and subscribes again, which re-creates
    // the consumer (at the end of the stream: what was published meanwhile is not its own).
    wait_metric(
        &herald,
        "herald_task_restarts_total{task=\"trigger default/t\"}",
        1,
    )
    .await;
    eventually(Duration::from_secs(60), "ready again", || async {
        let r = Client::new().get(&herald.url("/readyz")).await;
        (r.status == 200).then_some(())
    })
    .await;
    publish(&herald, "after", "t").await;
    eventually(
        WAIT,
        "the event published after the re-creation",
        || async { (ids_of(&sub, "after") == 1).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_nats_parked_events_are_kept_listed_and_redriven_with_the_bus_opened_directly() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    let (sub1, sub2) = (Subscriber::start().await, Subscriber::start().await);
    refuse_poison(&sub1);
    let manifests = yaml(&[
        broker("default"),
        no_retry_trigger("t1", &sub1.url("/")),
        no_retry_trigger("t2", &sub2.url("/")),
    ]);
    let herald = Herald::start(&nats.url(), &manifests).await;
    publish(&herald, "poison-n", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        1,
    )
    .await;
    let bus = nats.url();
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec!["parked".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(
            ["--trigger", "default/t1", "--bus", &bus, "--wait-ms", "500"].map(String::from),
        );
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = run_cli(&refs, CLI).await;
            assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
            out.stdout
        }
    };
    let listed = cli(&["list"]).await;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("poison-n") && listed.contains("knativeerrorcode"));
    let parse = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(
        parse(&cli(&["list"]).await),
        parse(&listed),
        "listing acknowledges nothing"
    );
    sub1.set_script(|_| Reply::status(200));
    assert_eq!(cli(&["redrive", "--all"]).await.trim(), "poison-n");
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-n") == 2).then_some(())
    })
    .await;
    assert_eq!(cli(&["list"]).await, "");
    assert_eq!(
        ids_of(&sub2, "poison-n"),
        1,
        "redrive reached trigger t1 only"
    );
}
