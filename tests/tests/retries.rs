//! Retries, backoff, `Retry-After`, timeouts and dead letters (the README's "Delivery
//! contract"), against real subscribers.

use std::time::Duration;

use base64::Engine;
use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::free_port;
use herald_tests::{Client, Herald, Recorded, Reply, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn publish(herald: &Herald, id: &str) {
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &structured(id))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

fn gaps(requests: &[Recorded]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn with_delivery(uri: &str, delivery: serde_json::Value) -> String {
    let mut t = trigger("t", "default", uri);
    for (k, v) in delivery.as_object().expect("object") {
        t["spec"]["delivery"][k] = v.clone();
    }
    yaml(&[broker("default"), t])
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_statuses_are_retried_until_success() {
    let sub = Subscriber::start().await;
    for status in [503, 500, 502, 504, 429, 404, 408, 409] {
        sub.push(Reply::status(status));
    }
    let herald = Herald::start(
        "embedded",
        &with_delivery(&sub.url("/"), json!({"retry": 8})),
    )
    .await;
    publish(&herald, "r-1").await;
    sub.wait_for(9, WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 9, "8 failures then one success, no more");
    assert!(got.iter().all(|r| r.id() == "r-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_retried_until_the_subscriber_is_up() {
    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}/late");
    let herald = Herald::start(
        "embedded",
        &with_delivery(
            &uri,
            json!({"retry": 20, "backoffDelay": "PT0.1S", "backoffPolicy": "linear"}),
        ),
    )
    .await;
    publish(&herald, "late-1").await;
    // The subscriber comes up only after an attempt failed and was retried.
    herald_tests::eventually(WAIT, "a retry", || async {
        (herald_tests::replicas::metric(&herald, "herald_delivery_retries_total").await > 0)
            .then_some(())
    })
    .await;
    let sub = Subscriber::start_on(port).await;
    let got = sub.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "late-1");
}

/// The dead-letter sink's copy of `id`, with the `knativeerror*` extensions checked.
fn assert_dead_lettered(dls: &[Recorded], id: &str, dest: &str, code: u16, body: &[u8]) {
    let dead = dls
        .iter()
        .find(|r| r.id() == id)
        .unwrap_or_else(|| panic!("{id} not dead-lettered"));
    assert_eq!(dead.attr("knativeerrordest").as_deref(), Some(dest), "{id}");
    assert_eq!(
        dead.attr("knativeerrorcode").as_deref(),
        Some(code.to_string().as_str()),
        "{id}"
    );
    let expected =
        (!body.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(body));
    assert_eq!(dead.attr("knativeerrordata"), expected, "{id}");
    assert_eq!(
        dead.attr("source").as_deref(),
        Some(herald_tests::fixtures::SOURCE)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_answers_go_to_the_dead_letter_sink_after_one_attempt() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    let target = sub.url("/redirect-target");
    sub.set_script(move |r| match r.id().as_str() {
        "s400" => Reply::status(400).body("bad thing"),
        "s403" => Reply::status(403).body("forbidden"),
        "s301" => Reply::status(301).header("location", &target),
        "s302" => Reply::status(302).header("location", &target),
        "s307" => Reply::status(307).header("location", &target),
        _ => Reply::status(200),
    });
    let sub_uri = sub.url("/sub");
    let herald = Herald::start(
        "embedded",
        &with_delivery(
            &sub_uri,
            json!({"retry": 3, "deadLetterSink": {"uri": dls.url("/dls")}}),
        ),
    )
    .await;
    let ids = ["s400", "s403", "s301", "s302", "s307"];
    for id in ids {
        publish(&herald, id).await;
    }
    let dead = dls.wait_for(ids.len(), WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    let mut seen: Vec<String> = got.iter().map(|r| r.id()).collect();
    seen.sort();
    assert_eq!(
        seen,
        ["s301", "s302", "s307", "s400", "s403"],
        "exactly one attempt each"
    );
    assert!(
        got.iter().all(|r| r.path == "/sub"),
        "a redirect was followed: {:?}",
        got.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_dead_lettered(&dead, "s400", &sub_uri, 400, b"bad thing");
    assert_dead_lettered(&dead, "s403", &sub_uri, 403, b"forbidden");
    assert_dead_lettered(&dead, "s301", &sub_uri, 301, b"");
    assert_dead_lettered(&dead, "s307", &sub_uri, 307, b"");
    assert!(dead.iter().all(|r| r.path == "/dls"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_dead_letter_with_the_last_answer_truncated_to_1024_bytes() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    let long = "x".repeat(3000);
    sub.push(Reply::status(503).body("first"));
    sub.push(Reply::status(502).body("second"));
    sub.push(Reply::status(500).body(long.clone()));
    let sub_uri = sub.url("/");
    let herald = Herald::start(
        "embedded",
        &with_delivery(
            &sub_uri,
            json!({"retry": 2, "deadLetterSink": {"uri": dls.url("/")}}),
        ),
    )
    .await;
    publish(&herald, "ex-1").await;
    let dead = dls.wait_for(1, WAIT).await;
    assert_eq!(sub.count(), 3, "retry: 2 means 3 attempts");
    assert_dead_lettered(&dead, "ex-1", &sub_uri, 500, &long.as_bytes()[..1024]);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_level_dead_letter_sink_is_the_fallback() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    sub.set_script(|_| Reply::status(400));
    let mut b = broker("default");
    b["spec"]["delivery"] = json!({"deadLetterSink": {"uri": dls.url("/broker-dls")}});
    let herald = Herald::start(
        "embedded",
        &yaml(&[b, trigger("t", "default", &sub.url("/"))]),
    )
    .await;
    publish(&herald, "b-1").await;
    let dead = dls.wait_for(1, WAIT).await;
    assert_eq!(dead[0].id(), "b-1");
    assert_eq!(dead[0].attr("knativeerrorcode").as_deref(), Some("400"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_and_capped_by_retry_after_max() {
    let sub = Subscriber::start().await;
    // Two triggers on one subscriber: one without a cap, one capped at 0.2 s.
    let mut free = trigger("free", "default", &sub.url("/free"));
    free["spec"]["delivery"]["retry"] = json!(1);
    let mut capped = trigger("capped", "default", &sub.url("/capped"));
    capped["spec"]["delivery"]["retry"] = json!(1);
    capped["spec"]["delivery"]["retryAfterMax"] = json!("PT0.2S");
    // Answers by path and attempt: the first request of each path gets a Retry-After.
    let attempts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        u32,
    >::new()));
    let counter = attempts.clone();
    sub.set_script(move |r| {
        let mut map = counter.lock().unwrap();
        let n = map.entry(r.path.clone()).or_default();
        *n += 1;
        match (r.path.as_str(), *n) {
            ("/free", 1) => Reply::status(503).header("retry-after", "1"),
            ("/capped", 1) => Reply::status(429).header("retry-after", "30"),
            _ => Reply::status(200),
        }
    });
    let herald = Herald::start("embedded", &yaml(&[broker("default"), free, capped])).await;
    publish(&herald, "ra-1").await;
    let got = sub.wait_for(4, WAIT).await;
    let by_path =
        |p: &str| -> Vec<Recorded> { got.iter().filter(|r| r.path == p).cloned().collect() };
    let free_gap = gaps(&by_path("/free"))[0];
    assert!(
        free_gap >= Duration::from_millis(950),
        "Retry-After: 1 with backoffDelay 50 ms waited only {free_gap:?}"
    );
    let capped_gap = gaps(&by_path("/capped"))[0];
    assert!(
        capped_gap >= Duration::from_millis(180) && capped_gap < Duration::from_secs(5),
        "Retry-After: 30 capped by retryAfterMax PT0.2S waited {capped_gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_answer_past_the_timeout_is_a_failed_attempt() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    sub.push(Reply::status(200).delay(Duration::from_secs(3)));
    let herald = Herald::start(
        "embedded",
        &with_delivery(
            &sub.url("/"),
            json!({"retry": 1, "timeout": "PT0.3S", "deadLetterSink": {"uri": dls.url("/")}}),
        ),
    )
    .await;
    publish(&herald, "slow-1").await;
    let got = sub.wait_for(2, WAIT).await;
    let gap = gaps(&got)[0];
    assert!(
        gap >= Duration::from_millis(300) && gap < Duration::from_millis(2500),
        "the retry came {gap:?} after the first attempt (timeout 0.3 s, answer after 3 s)"
    );
    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 2, "the second attempt succeeded");
    assert_eq!(dls.count(), 0, "nothing dead-lettered");
}

/// Waits before retries 1..=4 with every attempt failing: `exponential` doubles
/// `backoffDelay`, `linear` multiplies it by n (README formula; jitter up to 10%). Four
/// retries tell the two apart beyond scheduling noise (800 ms vs 1600 ms at the 4th).
#[tokio::test(flavor = "multi_thread")]
async fn backoff_waits_follow_the_documented_formula() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    // A dead-letter sink ends each event after one round of attempts (without one, the
    // parking lot would).
    let dls = Subscriber::start().await;
    let mut exp = trigger("exp", "default", &sub.url("/exp"));
    exp["spec"]["delivery"] = json!({"retry": 4, "backoffPolicy": "exponential",
        "backoffDelay": "PT0.2S", "deadLetterSink": {"uri": dls.url("/")}});
    let mut lin = trigger("lin", "default", &sub.url("/lin"));
    lin["spec"]["delivery"] = json!({"retry": 4, "backoffPolicy": "linear",
        "backoffDelay": "PT0.2S", "deadLetterSink": {"uri": dls.url("/")}});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), exp, lin])).await;
    publish(&herald, "bo-1").await;
    let got = sub.wait_for(10, WAIT).await;
    let check = |path: &str, expected_ms: [u64; 4]| {
        let requests: Vec<Recorded> = got.iter().filter(|r| r.path == path).cloned().collect();
        assert_eq!(requests.len(), 5, "{path}: retry 4 means 5 attempts");
        for (n, (gap, want)) in gaps(&requests).into_iter().zip(expected_ms).enumerate() {
            let want = Duration::from_millis(want);
            assert!(
                gap >= want.mul_f64(0.95) && gap <= want.mul_f64(1.1) + Duration::from_millis(250),
                "{path}: wait before retry {} was {gap:?}, expected {want:?} (+10% jitter)",
                n + 1
            );
        }
    };
    check("/exp", [200, 400, 800, 1600]);
    check("/lin", [200, 400, 600, 800]);
}

/// The parked events of trigger `default/t` of a stopped `herald`, as JSON.
async fn parked(herald: &Herald) -> Vec<serde_json::Value> {
    let data_dir = herald.data_dir().to_string_lossy().into_owned();
    let out = herald_tests::process::run_cli(
        &[
            "parked",
            "list",
            "--trigger",
            "default/t",
            "--data-dir",
            &data_dir,
            "--wait-ms",
            "300",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_dead_letter_sink_refuses_is_parked_not_dropped() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    dls.set_script(|_| Reply::status(500));
    let mut herald = Herald::start(
        "embedded",
        &with_delivery(
            &sub.url("/"),
            json!({"retry": 1, "deadLetterSink": {"uri": dls.url("/")}}),
        ),
    )
    .await;
    publish(&herald, "kept-1").await;
    // 2 subscriber attempts, 2 dead-letter attempts, then the parking lot: no second round.
    dls.wait_for(2, WAIT).await;
    dls.settle(Duration::from_millis(1500), Duration::from_secs(10))
        .await;
    assert_eq!((sub.count(), dls.count()), (2, 2));
    let (status, _) = herald.terminate().await;
    assert!(status.success());
    let lot = parked(&herald).await;
    assert_eq!(lot.len(), 1);
    assert_eq!(lot[0]["id"], "kept-1");
    assert_eq!(lot[0]["knativeerrorcode"], "500");

    // It was acknowledged on the trigger's topic once parked: a restart does not resend it.
    sub.set_script(|_| Reply::status(200));
    herald.restart().await;
    sub.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(sub.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_any_delivery_settings_herald_retries_exponentially_from_200_ms() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    let mut t = trigger("t", "default", &sub.url("/"));
    t["spec"].as_object_mut().unwrap().remove("delivery");
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    publish(&herald, "def-1").await;
    let got = sub.wait_for(4, WAIT).await;
    for (n, (gap, want)) in gaps(&got[..4]).into_iter().zip([200, 400, 800]).enumerate() {
        let want = Duration::from_millis(want);
        assert!(
            gap >= want.mul_f64(0.95) && gap <= want.mul_f64(1.1) + Duration::from_millis(150),
            "default backoff before retry {} was {gap:?}, expected {want:?}",
            n + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_delivery_falls_back_to_the_broker_field_by_field() {
    let sub = Subscriber::start().await;
    let dls = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    let mut b = broker("default");
    b["spec"]["delivery"] = json!({
        "retry": 0,
        "backoffDelay": "PT0.05S",
        "deadLetterSink": {"uri": dls.url("/")}
    });
    // `inherits` sets nothing: one attempt (broker retry 0), then the broker's sink.
    let mut inherits = trigger("inherits", "default", &sub.url("/inherits"));
    inherits["spec"].as_object_mut().unwrap().remove("delivery");
    // `overrides` sets only retry: 3 attempts, still the broker's sink.
    let mut overrides = trigger("overrides", "default", &sub.url("/overrides"));
    overrides["spec"]["delivery"] = json!({"retry": 2});
    let herald = Herald::start("embedded", &yaml(&[b, inherits, overrides])).await;
    publish(&herald, "fb-1").await;
    dls.wait_for(2, WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    let count = |p: &str| got.iter().filter(|r| r.path == p).count();
    assert_eq!(count("/inherits"), 1, "broker retry 0: one attempt");
    assert_eq!(count("/overrides"), 3, "trigger retry 2: three attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backoff_cap_annotation_limits_each_wait() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    let mut t = trigger("t", "default", &sub.url("/"));
    t["metadata"]["annotations"] = json!({"herald.dev/delivery.backoffCap": "PT0.15S"});
    t["spec"]["delivery"] =
        json!({"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.1S"});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    publish(&herald, "cap-1").await;
    let got = sub.wait_for(4, WAIT).await;
    for (n, (gap, want)) in gaps(&got[..4]).into_iter().zip([100, 150, 150]).enumerate() {
        let want = Duration::from_millis(want);
        assert!(
            gap >= want.mul_f64(0.95) && gap <= want.mul_f64(1.1) + Duration::from_millis(120),
            "wait before retry {} was {gap:?}, expected {want:?} (cap 150 ms)",
            n + 1
        );
    }
}

/// README "Delivery contract": an event is acknowledged only after it was delivered, dead-lettered, parked
/// or filtered out. Retries exhausted with no dead-letter sink: parked, so nothing is lost and
/// nothing behind it waits.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_dead_letter_sink_an_undeliverable_event_is_parked() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(500));
    let mut herald = Herald::start(
        "embedded",
        &with_delivery(&sub.url("/"), json!({"retry": 1})),
    )
    .await;
    publish(&herald, "nodls-1").await;
    publish(&herald, "nodls-2").await;
    sub.wait_for(4, WAIT).await;
    let (status, _) = herald.terminate().await;
    assert!(status.success());
    let ids: Vec<_> = parked(&herald)
        .await
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&json!("nodls-1")) && ids.contains(&json!("nodls-2")));
}
