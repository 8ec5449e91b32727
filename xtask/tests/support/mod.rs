//! Setup shared by the deploy tests: the root check, the workspace, and the binaries to push.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the tests run as root; prints why a test is skipped otherwise (`needs` says what
/// root is needed for).
pub fn running_as_root(needs: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        println!("SKIPPED: needs root ({needs}); run the tests as root");
    }
    root
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the debug binaries deploy pushes and copies them out of `target/`, so concurrent
/// builds cannot change them between two deploys of one test.
pub fn binaries(dir: &Path) -> PathBuf {
    let packages = ["veza-lb", "veza-demo-backend", "veza-provision"];
    let mut build = Command::new(env!("CARGO"));
    build.arg("build").arg("--quiet").current_dir(workspace());
    for p in packages {
        build.args(["--package", p]);
    }
    assert!(build.status().unwrap().success(), "cargo build failed");
    let built = Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for p in packages {
        std::fs::copy(built.join(p), bin.join(p)).unwrap();
    }
    bin
}
