use cloudevents::{AttributesReader, Data};
use serde_json::json;

use super::*;

fn ctx(mode: Mode, plural: &str) -> EventContext {
    EventContext {
        api_server: "https://10.0.0.1:443".into(),
        plural: plural.into(),
        mode,
        max_value_bytes: crate::attribute::DEFAULT_MAX_VALUE_BYTES,
    }
}

fn deployment() -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "resourceVersion": "42",
                        "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "App", "name": "web"}]},
           "spec": {"replicas": 2}})
}

#[test]
fn reference_mode_sends_the_reference_with_knative_attributes() {
    let e = to_event(
        Change::Added,
        &deployment(),
        &ctx(Mode::Reference, "deployments"),
    );
    assert_eq!(e.ty(), "dev.knative.apiserver.ref.add");
    assert_eq!(e.source().to_string(), "https://10.0.0.1:443");
    assert_eq!(
        e.subject(),
        Some("/apis/apps/v1/namespaces/prod/deployments/web")
    );
    assert_eq!(e.id(), "u-1/42/add");
    assert_eq!(e.datacontenttype(), Some("application/json"));
    assert_eq!(
        e.data(),
        Some(&Data::Json(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "prod"})
        ))
    );
    for (k, v) in [
        ("kind", "Deployment"),
        ("apiversion", "apps/v1"),
        ("name", "web"),
        ("namespace", "prod"),
    ] {
        assert_eq!(
            e.extension(k).map(|x| x.to_string()),
            Some(v.to_owned()),
            "{k}"
        );
    }
}

#[test]
fn resource_mode_sends_the_object_and_ids_differ_per_change() {
    let c = ctx(Mode::Resource, "deployments");
    let update = to_event(Change::Updated, &deployment(), &c);
    let delete = to_event(Change::Deleted, &deployment(), &c);
    assert_eq!(update.ty(), "dev.knative.apiserver.resource.update");
    assert_eq!(delete.ty(), "dev.knative.apiserver.resource.delete");
    assert_eq!(update.data(), Some(&Data::Json(deployment())));
    assert_ne!(update.id(), delete.id());
}

#[test]
fn core_and_cluster_scoped_objects_get_knative_subjects() {
    let pod = json!({"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": "api", "namespace": "default", "uid": "u", "resourceVersion": "1"}});
    let e = to_event(Change::Added, &pod, &ctx(Mode::Reference, "endpoints"));
    assert_eq!(
        e.subject(),
        Some("/apis/v1/namespaces/default/endpoints/api")
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u", "resourceVersion": "1"}});
    let e = to_event(Change::Added, &node, &ctx(Mode::Reference, "nodes"));
    assert_eq!(e.subject(), Some("/apis/v1/nodes/n1"));
    assert!(
        e.extension("namespace").is_none(),
        "missing fields are omitted"
    );
}

#[test]
fn owner_filter_matches_owner_references_by_api_version_and_kind() {
    let f = OwnerFilter {
        api_version: "example.com/v1".into(),
        kind: "App".into(),
    };
    assert!(f.matches(&deployment()));
    let g = OwnerFilter {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
    };
    assert!(!g.matches(&deployment()));
}

#[test]
fn hostile_object_names_become_clean_bounded_attributes_and_the_data_keeps_them() {
    let huge = "x".repeat(100_000);
    let object = json!({"apiVersion": "v1\u{85}", "kind": "Config\u{0}Map",
           "metadata": {"name": format!("a\nb\u{1b}[31m{huge}"), "namespace": "ns\r",
                        "uid": "u\n1", "resourceVersion": "4\t2"}});
    for mode in [Mode::Reference, Mode::Resource] {
        for change in [Change::Added, Change::Updated, Change::Deleted] {
            let e = to_event(change, &object, &ctx(mode, "config\u{7f}maps"));
            crate::attribute::assert_emittable(&e);
            assert!(
                e.subject()
                    .unwrap()
                    .starts_with("/apis/v1%C2%85/namespaces/ns%0D/config%7Fmaps/a%0Ab%1B[31mxxx")
            );
            assert!(e.id().starts_with("u%0A1/4%092/"));
        }
    }
    let e = to_event(Change::Added, &object, &ctx(Mode::Reference, "configmaps"));
    let Some(Data::Json(data)) = e.data() else {
        panic!()
    };
    assert_eq!(
        data["name"], object["metadata"]["name"],
        "data is not cleaned"
    );
}
