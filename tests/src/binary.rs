//! Locating the built `herald` binary.

use std::path::PathBuf;

/// `HERALD_BIN` if set; else `herald` in the profile directory above the test executable
/// (test executables live in `target/<profile>/deps/`).
pub fn herald_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HERALD_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HERALD_BIN={} does not exist; run `cargo build --bins` first",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    let profile = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    let path = profile.join("herald");
    assert!(
        path.is_file(),
        "no herald binary at {}: run `cargo build --bins` first (with the same \
         CARGO_TARGET_DIR and profile), or set HERALD_BIN",
        path.display()
    );
    path
}
