//! The embedded bus forgets the cursors of triggers removed from the configuration, so they
//! do not hold back retention forever.

use herald_tests::Herald;
use herald_tests::manifests::{broker, trigger, yaml};

/// The cursor files of the broker topics (a trigger's own parking-lot and redrive topics are
/// not forgotten with it: its parked events stay listable).
fn cursor_files(herald: &Herald) -> Vec<String> {
    let mut names = Vec::new();
    let topics = herald.data_dir().join("topics");
    for topic in std::fs::read_dir(topics).expect("topics dir").flatten() {
        if !topic
            .file_name()
            .to_string_lossy()
            .starts_with("knative-broker-")
        {
            continue;
        }
        if let Ok(groups) = std::fs::read_dir(topic.path().join("groups")) {
            for group in groups.flatten() {
                names.push(group.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_trigger_loses_its_cursor_at_the_next_start() {
    let docs = [
        broker("default"),
        trigger("old", "default", "http://127.0.0.1:9/"),
        trigger("kept", "default", "http://127.0.0.1:9/"),
    ];
    let mut herald = Herald::start("embedded", &yaml(&docs)).await;
    let before = cursor_files(&herald);
    assert!(before.iter().any(|f| f.contains("old")), "{before:?}");
    herald.terminate().await;
    herald.rewrite_manifests(&yaml(&[
        broker("default"),
        trigger("kept", "default", "http://127.0.0.1:9/"),
    ]));
    herald.restart().await;
    let after = cursor_files(&herald);
    assert!(!after.iter().any(|f| f.contains("old")), "{after:?}");
    assert!(after.iter().any(|f| f.contains("kept")), "{after:?}");
}
