//! A fake Kubernetes API server on 127.0.0.1:0 speaking the real list/watch protocol for
//! ConfigMaps: discovery (`/api/v1`), lists carrying a resourceVersion, watches as a stream of
//! JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK, ERROR 410 for a compacted resourceVersion),
//! and streams the test can close. No real API server can run here; this is the stand-in.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<String, Value>,
    log: Vec<(u64, String, Value)>,
    compacted: u64,
    watches_refused: bool,
    /// Watch requests answered with a stream, and refused with `503`.
    watches_opened: usize,
    watches_turned_away: usize,
}

#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Option<(u64, String, Value)>>,
    pub url: String,
}

impl FakeApiServer {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = Self {
            inner: Arc::default(),
            events,
            url,
        };
        let app = Router::new()
            .route("/api/v1", get(discovery))
            .route("/api/v1/configmaps", get(list_or_watch))
            .route("/api/v1/namespaces/{ns}/configmaps", get(list_or_watch))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// Creates or updates a ConfigMap in namespace `ns`; returns its new resourceVersion.
    pub fn apply(&self, name: &str, value: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        let kind = if inner.objects.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": rv.to_string()},
            "data": {"value": value},
        });
        inner.objects.insert(name.to_owned(), object.clone());
        self.record(&mut inner, rv, kind, object);
        rv
    }

    pub fn delete(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        let mut object = inner.objects.remove(name).expect("object exists");
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(&mut inner, rv, "DELETED", object);
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch.
    pub fn bookmark(&self) {
        let rv = self.inner.lock().unwrap().rv;
        let object = json!({"kind": "ConfigMap", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv.to_string()}});
        let _ = self.events.send(Some((rv, "BOOKMARK".into(), object)));
    }

    /// Forgets history: watches from an older resourceVersion now get `410 Gone`.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.rv;
        inner.log.clear();
    }

    /// While refused, watch requests get `503`, as during an API server restart.
    pub fn refuse_watches(&self, refused: bool) {
        self.inner.lock().unwrap().watches_refused = refused;
    }

    /// How many watch streams are open (a watcher is following changes once this is > 0).
    pub fn open_watches(&self) -> usize {
        self.events.receiver_count()
    }

    /// How many watch requests got a stream so far (each already receives live changes).
    pub fn watches_opened(&self) -> usize {
        self.inner.lock().unwrap().watches_opened
    }

    /// How many watch requests were refused with `503` so far.
    pub fn watches_turned_away(&self) -> usize {
        self.inner.lock().unwrap().watches_turned_away
    }

    /// Ends every open watch stream, as the API server does on timeouts and restarts.
    pub fn close_watches(&self) {
        let _ = self.events.send(None);
    }

    fn record(&self, inner: &mut Inner, rv: u64, kind: &str, object: Value) {
        inner.log.push((rv, kind.to_owned(), object.clone()));
        let _ = self.events.send(Some((rv, kind.to_owned(), object)));
    }

    /// A kubeconfig pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path) {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: fake\n  user: {{token: test}}\ncontexts:\n- name: fake\n  \
             context: {{cluster: fake, user: fake}}\ncurrent-context: fake\n",
            self.url
        );
        std::fs::write(path, yaml).unwrap();
    }
}

async fn discovery() -> axum::Json<Value> {
    axum::Json(json!({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [{"name": "configmaps", "singularName": "configmap", "namespaced": true,
                       "kind": "ConfigMap", "verbs": ["get", "list", "watch"]}],
    }))
}

fn line(kind: &str, object: &Value) -> String {
    format!("{}\n", json!({"type": kind, "object": object}))
}

async fn list_or_watch(
    State(server): State<FakeApiServer>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let mut inner = server.inner.lock().unwrap();
    if q.get("watch").map(String::as_str) != Some("true") {
        // Real list items carry no apiVersion/kind; the list does.
        let items: Vec<Value> = inner
            .objects
            .values()
            .map(|o| json!({"metadata": o["metadata"], "data": o["data"]}))
            .collect();
        let body = json!({"kind": "ConfigMapList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items});
        return axum::Json(body).into_response_body();
    }
    if inner.watches_refused {
        inner.watches_turned_away += 1;
        let mut response = axum::response::Response::new(Body::from("unavailable"));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if from < inner.compacted {
        let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": "too old resource version", "reason": "Expired", "code": 410});
        return axum::response::Response::new(Body::from(line("ERROR", &gone)));
    }
    let replay: Vec<String> = inner
        .log
        .iter()
        .filter(|(rv, _, _)| *rv > from)
        .map(|(_, k, o)| line(k, o))
        .collect();
    let live = server.events.subscribe();
    inner.watches_opened += 1;
    drop(inner);
    let replay = futures_util::stream::iter(replay.into_iter().map(Ok::<_, std::io::Error>));
    let live = futures_util::stream::unfold(live, |mut rx| async move {
        match rx.recv().await {
            Ok(Some((_, kind, object))) => Some((Ok(line(&kind, &object)), rx)),
            _ => None,
        }
    });
    use futures_util::StreamExt;
    axum::response::Response::new(Body::from_stream(replay.chain(live)))
}

trait IntoBody {
    fn into_response_body(self) -> axum::response::Response;
}

impl IntoBody for axum::Json<Value> {
    fn into_response_body(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}
