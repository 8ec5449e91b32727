//! Test helpers shared by provision's and veza-provision's integration tests (the latter
//! include this file with `#[path]`).
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Whether the test can run: creating users and chowning needs root.
pub fn running_as_root() -> bool {
    let root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        println!("SKIPPED: needs root (useradd --prefix, chown); run the tests as root");
    }
    root
}

/// An empty `--root` tree with the minimal account database useradd expects.
pub fn fresh_root() -> testkit::TempDir {
    let dir = testkit::temp_dir();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    fs::write(dir.path().join("etc/group"), "root:x:0:\n").unwrap();
    dir
}

/// An example role file from `examples/provision/`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/provision")
        .join(format!("{name}.toml"))
}

/// SHA-256 over every path in `dir` with its type, mode, owner and content (or link
/// target): equal digests mean a byte- and metadata-identical tree.
pub fn tree_digest(dir: &Path) -> String {
    let mut entries = Vec::new();
    walk(dir, dir, &mut entries);
    entries.sort();
    let mut hash = Sha256::new();
    for entry in entries {
        hash.update(entry);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mut record = format!(
            "{}|{:o}|{}|{}|",
            path.strip_prefix(base).unwrap().display(),
            meta.mode(),
            meta.uid(),
            meta.gid()
        )
        .into_bytes();
        if meta.file_type().is_symlink() {
            record.extend(
                fs::read_link(&path)
                    .unwrap()
                    .display()
                    .to_string()
                    .into_bytes(),
            );
        } else if meta.is_file() {
            record.extend(fs::read(&path).unwrap());
        }
        out.push(record);
        if meta.is_dir() {
            walk(base, &path, out);
        }
    }
}

/// Every file under `dir` whose name starts with `prefix`.
pub fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        {
            found.push(path.clone());
        }
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(files_named(&path, prefix));
        }
    }
    found
}

/// Mode bits and owner of a path in the tree.
pub fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// A `systemctl` stand-in that appends its arguments to `log` and answers `is-enabled` from
/// a marker file per unit that `enable` creates.
pub fn systemctl_stub(dir: &Path) -> (PathBuf, PathBuf) {
    let stub = dir.join("systemctl");
    let log = dir.join("systemctl.log");
    let marker = dir.join("enabled-");
    fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\ncase \"$1\" in\n  is-enabled) [ -e '{marker}'\"$2\" ] && echo enabled || {{ echo disabled; exit 1; }} ;;\n  enable) touch '{marker}'\"$2\" ;;\nesac\n",
            log = log.display(),
            marker = marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    (stub, log)
}
