//! Building the workspace binaries a subcommand runs, and finding them in `target/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Error, Result, fail};

/// Which cargo profile to build with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `dev`: quick to build, for functional checks.
    Dev,
    /// `release`: for measurements.
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `veza-lb`.
    pub veza_lb: PathBuf,
    /// `veza-demo-backend`.
    pub demo_backend: PathBuf,
}

/// The workspace root (where the root `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

fn cargo() -> tokio::process::Command {
    // Under `cargo xtask`, CARGO is the cargo that is running us (same toolchain).
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// Runs `cargo build` for `veza-lb` and `veza-demo-backend` and returns where they are.
pub async fn build(profile: Profile) -> Result<Binaries> {
    let dir = build_packages(profile, &["veza-lb", "veza-demo-backend"]).await?;
    Ok(Binaries {
        veza_lb: dir.join("veza-lb"),
        demo_backend: dir.join("veza-demo-backend"),
    })
}

/// Runs `cargo build` for `packages` (each with a binary of the same name) and returns the
/// directory holding the binaries.
pub async fn build_packages(profile: Profile, packages: &[&str]) -> Result<PathBuf> {
    println!(
        "building {} ({} profile)...",
        packages.join(", "),
        profile.dir()
    );
    let mut command = cargo();
    command.arg("build");
    for package in packages {
        command.args(["--package", package]);
    }
    if profile == Profile::Release {
        command.arg("--release");
    }
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(Error::io("cannot run cargo build"))?;
    let mut guard = InterruptOnDrop(child.id());
    let status = child
        .wait()
        .await
        .map_err(Error::io("cannot wait for cargo build"))?;
    guard.0 = None;
    if !status.success() {
        return fail(format!(
            "`cargo build -p {}` failed ({status})",
            packages.join(" -p ")
        ));
    }
    let dir = target_dir().await?.join(profile.dir());
    for package in packages {
        let path = dir.join(package);
        if !path.is_file() {
            return fail(format!(
                "cargo build succeeded but {} does not exist",
                path.display()
            ));
        }
    }
    Ok(dir)
}

/// Sends SIGINT to a cargo still running when the build is abandoned (Ctrl-C, SIGTERM): cargo
/// then stops cleanly after its running compiler jobs, where SIGKILL would orphan them.
struct InterruptOnDrop(Option<u32>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
    }
}

/// The target directory, as cargo sees it (honours CARGO_TARGET_DIR and `build.target-dir`).
async fn target_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return Ok(if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        });
    }
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(Error::io("cannot run cargo metadata"))?;
    if !output.status.success() {
        return fail(format!("`cargo metadata` failed ({})", output.status));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Message(format!("cannot read `cargo metadata` output: {e}")))?;
    match metadata["target_directory"].as_str() {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => fail("`cargo metadata` did not name the target directory"),
    }
}
