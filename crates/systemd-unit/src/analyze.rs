//! Checking rendered units with systemd's own tools: `systemd-analyze verify` and
//! `systemd-analyze security --offline=yes`. Used by the tests here and in `provision`, and by
//! anything else that wants proof a unit loads cleanly and how exposed it is.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command as Process;

use crate::Error;
use crate::model::{SocketUnit, TimerUnit, Unit};

/// Whether `systemd-analyze` can be run here.
pub fn available() -> bool {
    Process::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn analyze_error(reason: impl Into<String>) -> Error {
    Error::Analyze(reason.into())
}

/// Verifies `unit` installed as `name` (e.g. `veza-lb.service`) with `systemd-analyze verify`.
///
/// The check runs in a throwaway root holding a copy of the host's units (for the default
/// dependencies) and a stub executable at every program path the unit runs, so only the unit
/// itself is judged. Any warning counts as a failure: systemd ignores bad lines with a warning
/// and exit status 0.
///
/// # Errors
/// [`Error::Analyze`] with systemd's messages and the unit text.
pub fn verify(name: &str, unit: &Unit) -> Result<(), Error> {
    verify_with(name, unit, None)
}

/// [`verify`] of a service and the socket unit that activates it, installed side by side.
///
/// # Errors
/// As [`verify`], for either unit.
pub fn verify_activated(
    name: &str,
    unit: &Unit,
    socket_name: &str,
    socket: &SocketUnit,
) -> Result<(), Error> {
    verify_with(name, unit, Some((socket_name, socket.render()?)))
}

/// [`verify`] of a scheduled service and the timer unit that starts it, side by side.
///
/// # Errors
/// As [`verify`], for either unit.
pub fn verify_timed(
    name: &str,
    unit: &Unit,
    timer_name: &str,
    timer: &TimerUnit,
) -> Result<(), Error> {
    verify_with(name, unit, Some((timer_name, timer.render()?)))
}

/// Whether systemd reads `expression` as a calendar event with a next elapse
/// (`systemd-analyze calendar`); the error is systemd's message.
///
/// # Errors
/// [`Error::Analyze`] when it does not.
pub fn calendar(expression: &str) -> Result<(), Error> {
    let out = Process::new("systemd-analyze")
        .args(["calendar", expression])
        .output()
        .map_err(|e| analyze_error(format!("cannot run systemd-analyze: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(analyze_error(format!(
            "systemd-analyze calendar {expression:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Verifies `unit` installed as `name`, with a companion unit (its socket or timer) if any.
fn verify_with(name: &str, unit: &Unit, socket: Option<(&str, String)>) -> Result<(), Error> {
    let text = unit.render()?;
    let root = tempfile::tempdir()
        .map_err(|e| analyze_error(format!("cannot create a temporary root: {e}")))?;
    let io = |e: std::io::Error| analyze_error(format!("cannot prepare the temporary root: {e}"));
    let units = root.path().join("usr/lib/systemd");
    fs::create_dir_all(&units).map_err(io)?;
    let copied = Process::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(&units)
        .status()
        .map_err(io)?;
    if !copied.success() {
        return Err(analyze_error(
            "copying /usr/lib/systemd/system failed; is systemd installed?",
        ));
    }
    for command in
        std::iter::once(&unit.service.exec_start).chain(unit.service.exec_reload.as_ref())
    {
        let path = root
            .path()
            .join(command.program().as_str().trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap_or(root.path())).map_err(io)?;
        fs::write(&path, "#!/bin/sh\n").map_err(io)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    let dir = root.path().join("etc/systemd/system");
    fs::create_dir_all(&dir).map_err(io)?;
    fs::write(dir.join(name), &text).map_err(io)?;
    if let Some((socket_name, socket_text)) = &socket {
        fs::write(dir.join(socket_name), socket_text).map_err(io)?;
    }
    let out = Process::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", root.path().display()))
        .arg(name)
        .args(socket.as_ref().map(|(socket_name, _)| *socket_name))
        .output()
        .map_err(|e| analyze_error(format!("cannot run systemd-analyze: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(analyze_error(format!(
            "systemd-analyze verify {name}:\n{}\n--- unit ---\n{text}",
            stderr.trim()
        )))
    }
}

/// What `systemd-analyze security` says about a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// Overall exposure, 0.0 (locked down) to 10.0 (unprotected).
    pub exposure: f64,
    /// The checks marked exposed, e.g. `PrivateNetwork=`.
    pub exposed: BTreeSet<String>,
}

/// Scores a unit file with `systemd-analyze security --offline=yes`.
///
/// # Errors
/// [`Error::Analyze`] when the tool cannot run or prints no score.
pub fn security(file: &Path) -> Result<Security, Error> {
    let out = Process::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(file)
        .output()
        .map_err(|e| analyze_error(format!("cannot run systemd-analyze: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exposure = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| {
            l.rsplit(':')
                .next()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            analyze_error(format!(
                "no exposure score in:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
    let exposed = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('✗'))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    Ok(Security { exposure, exposed })
}

/// [`verify`] then [`security`] of `unit` installed as `name`.
///
/// # Errors
/// As [`verify`] and [`security`].
pub fn verify_and_score(name: &str, unit: &Unit) -> Result<Security, Error> {
    verify(name, unit)?;
    let dir = tempfile::tempdir()
        .map_err(|e| analyze_error(format!("cannot create a temporary directory: {e}")))?;
    let file = dir.path().join(name);
    fs::write(&file, unit.render()?)
        .map_err(|e| analyze_error(format!("cannot write {}: {e}", file.display())))?;
    security(&file)
}
