//! Running a [`Plan`] against a host (or a `--root` tree), step by step.
//!
//! tidy: long file: one step runner per kind of step (user, directory, env file, unit,
//! systemctl) and their idempotence rules read best side by side; about half is tests.

use std::fmt;
use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use systemd_unit::{AccountName, KeepalivedSpec};

use crate::accounts::Accounts;
use crate::plan::{DirectorySpec, EnvFileSpec, Mode, Plan};
use crate::vrrp;

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Work on this directory tree instead of `/`: users are created with
    /// `useradd --prefix`, and nothing is asked of systemctl.
    pub root: Option<PathBuf>,
    /// Change nothing; report what would change.
    pub check: bool,
    /// Attach unified diffs of files that change (env file values are hidden).
    pub diff: bool,
    /// Run this program for the systemctl steps, even under `root`. For tests (a recording
    /// stub) and for image builds that wrap `systemctl --root`; `None` runs `systemctl` when
    /// systemd is PID 1 and skips those steps otherwise.
    pub systemctl: Option<PathBuf>,
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Already as planned.
    Ok,
    /// Changed (or, with `--check`, would change).
    Changed,
    /// Not applicable here; the detail says why.
    Skipped,
    /// Failed; the plan stopped here.
    Failed,
}

impl Status {
    /// How reports write it: `ok`, `changed`, `skipped`, `failed`.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Changed => "changed",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    /// The status a report's word names (what `cargo xtask deploy` reads back).
    #[must_use]
    pub fn parse(word: &str) -> Option<Status> {
        [Self::Ok, Self::Changed, Self::Skipped, Self::Failed]
            .into_iter()
            .find(|s| s.word() == word)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str: the CLI aligns the column with `{:<8}`.
        f.pad(self.word())
    }
}

/// One reported step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step manages, e.g. `directory /var/log/veza`.
    pub name: String,
    /// Its outcome.
    pub status: Status,
    /// Why: what was found, changed, or went wrong.
    pub detail: String,
    /// Unified diff of the file it changed, when diffs were asked for.
    pub diff: Option<String>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {}: {}", self.status, self.name, self.detail)
    }
}

/// Every step run, in order. The plan stops at the first failed step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Report {
    /// How many steps ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }

    /// Whether a step failed.
    pub fn failed(&self) -> bool {
        self.count(Status::Failed) > 0
    }

    /// `ok=N changed=N skipped=N failed=N`.
    pub fn recap(&self) -> String {
        format!(
            "ok={} changed={} skipped={} failed={}",
            self.count(Status::Ok),
            self.count(Status::Changed),
            self.count(Status::Skipped),
            self.count(Status::Failed)
        )
    }
}

/// What a step did; an `Err(String)` from a step is its failure reason.
enum Outcome {
    Ok(String),
    Changed(String, Option<String>),
    Skipped(String),
}

type StepResult = Result<Outcome, String>;

/// What a run changed, which decides the restart.
#[derive(Debug, Clone, Copy)]
struct Changed {
    unit: bool,
    socket: bool,
    timer: bool,
    env: bool,
}

/// Brings the host (or `options.root`) to the state `plan` describes.
///
/// Steps, in order: user, directories, env file, unit file (and the socket unit of a
/// socket-activated service, the timer of a scheduled one), `daemon-reload` when a unit
/// changed, restart when a unit or the env file changed, enable (the socket unit too). A
/// scheduled service (veza-load) is never started here: its timer is (re)started when it
/// changed and enabled, and the service runs on the schedule. The systemctl steps are skipped
/// under `--root` and where systemd is not PID 1.
pub fn apply(plan: &Plan, options: &Options) -> Report {
    let host = Host {
        plan,
        options,
        accounts: options
            .root
            .as_ref()
            .map_or(Accounts::Host, |root| Accounts::Tree(root.clone())),
        systemctl_unavailable: if options.systemctl.is_some() {
            None
        } else {
            systemctl_unavailable(options)
        },
    };
    let mut report = Report::default();
    let mut record = |name: String, result: StepResult| {
        let (status, detail, diff) = match result {
            Ok(Outcome::Ok(detail)) => (Status::Ok, detail, None),
            Ok(Outcome::Changed(detail, diff)) => (Status::Changed, detail, diff),
            Ok(Outcome::Skipped(detail)) => (Status::Skipped, detail, None),
            Err(detail) => (Status::Failed, detail, None),
        };
        report.steps.push(Step {
            name,
            status,
            detail,
            diff,
        });
        status != Status::Failed
    };

    if !record(format!("user {}", plan.user.name), host.user()) {
        return report;
    }
    for dir in &plan.directories {
        if !record(
            format!("directory {}", dir.path.as_str()),
            host.directory(dir),
        ) {
            return report;
        }
    }
    let mut env_changed = false;
    if let Some(env) = &plan.env_file {
        let (result, content_changed) = host.env_file(env);
        env_changed = content_changed;
        if !record(format!("env file {}", env.path.as_str()), result) {
            return report;
        }
    }
    let unit_name = plan.unit_name();
    let (unit_result, unit_changed) = host.unit_file(&unit_name, plan.rendered_unit());
    if !record(format!("unit {unit_name}"), unit_result) {
        return report;
    }
    let socket = plan.socket_unit_name();
    let mut socket_changed = false;
    if let (Some(socket), Some(text)) = (&socket, plan.rendered_socket_unit()) {
        let (result, changed) = host.unit_file(socket, text);
        socket_changed = changed;
        if !record(format!("unit {socket}"), result) {
            return report;
        }
    }
    let timer = plan.timer_unit_name();
    let mut timer_changed = false;
    if let (Some(timer), Some(text)) = (&timer, plan.rendered_timer_unit()) {
        let (result, changed) = host.unit_file(timer, text);
        timer_changed = changed;
        if !record(format!("unit {timer}"), result) {
            return report;
        }
    }
    // One side of an LB pair: keepalived's configuration and unit.
    let mut pair = PairChanged::default();
    if let (Some(conf), Some(spec)) = (plan.rendered_keepalived_conf(), plan.keepalived_spec()) {
        let (result, changed) = host.root_file(Path::new(vrrp::CONFIG_PATH), conf);
        pair.conf = changed;
        if !record(format!("keepalived config {}", vrrp::CONFIG_PATH), result) {
            return report;
        }
        let unit = spec
            .unit()
            .and_then(|u| u.render())
            .map_err(|e| format!("cannot render the unit: {e}"));
        let (result, changed) = host.unit_file(KeepalivedSpec::UNIT, unit);
        pair.unit = changed;
        if !record(format!("unit {}", KeepalivedSpec::UNIT), result) {
            return report;
        }
    }
    if !record(
        "systemctl daemon-reload".into(),
        host.daemon_reload(unit_changed || socket_changed || timer_changed || pair.unit),
    ) {
        return report;
    }
    let changed = Changed {
        unit: unit_changed,
        socket: socket_changed,
        timer: timer_changed,
        env: env_changed,
    };
    if let Some(timer) = &timer {
        // The service runs on the schedule; a new unit or env file applies to the next run.
        if !record(
            format!("restart {timer}"),
            host.restart_timer(timer, changed),
        ) {
            return report;
        }
        record(format!("enable {timer}"), host.enable(timer));
        return report;
    }
    if !record(format!("restart {unit_name}"), host.restart(changed)) {
        return report;
    }
    if let Some(socket) = &socket
        && !record(format!("enable {socket}"), host.enable(socket))
    {
        return report;
    }
    if !record(format!("enable {unit_name}"), host.enable(&unit_name)) {
        return report;
    }
    if plan.vrrp.is_some() {
        let unit = KeepalivedSpec::UNIT;
        if record(format!("restart {unit}"), host.restart_keepalived(pair)) {
            record(format!("enable {unit}"), host.enable(unit));
        }
    }
    report
}

/// What changed of keepalived's side: its unit (restart) or only its configuration (reload:
/// keepalived rereads it and the address stays where it is).
#[derive(Debug, Clone, Copy, Default)]
struct PairChanged {
    unit: bool,
    conf: bool,
}

fn systemctl_unavailable(options: &Options) -> Option<String> {
    if let Some(root) = &options.root {
        return Some(format!(
            "--root {} given: systemctl would act on the running host, not on that tree",
            root.display()
        ));
    }
    // sd_booted(3): this directory exists only when systemd is PID 1.
    if !Path::new("/run/systemd/system").is_dir() {
        return Some("systemd is not PID 1 on this host (no /run/systemd/system)".into());
    }
    None
}

struct Host<'a> {
    plan: &'a Plan,
    options: &'a Options,
    accounts: Accounts,
    systemctl_unavailable: Option<String>,
}

impl Host<'_> {
    /// Where an absolute plan path lives on this run (under `--root` if given).
    fn path(&self, path: &Path) -> PathBuf {
        match &self.options.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_owned(),
        }
    }

    fn systemctl(&self) -> String {
        self.options
            .systemctl
            .as_ref()
            .map_or_else(|| "systemctl".to_owned(), |p| p.display().to_string())
    }

    fn user(&self) -> StepResult {
        let spec = &self.plan.user;
        let name = spec.name.as_str();
        let found = self
            .accounts
            .user(name)
            .map_err(|e| format!("cannot read the user database: {e}"))?;
        let prefix: Vec<String> = match &self.options.root {
            Some(root) => vec!["--prefix".into(), root.display().to_string()],
            None => Vec::new(),
        };
        let (home, shell) = (spec.home.as_str(), spec.shell.as_str());
        let Some(account) = found else {
            if self.options.check {
                return Ok(Outcome::Changed(
                    format!("would create system user (home {home}, shell {shell})"),
                    None,
                ));
            }
            require_root("creating a user")?;
            let group_exists = self
                .accounts
                .gid(name)
                .map_err(|e| format!("cannot read the group database: {e}"))?
                .is_some();
            // useradd refuses --user-group when the group already exists.
            let group_args = if group_exists {
                vec!["--gid", name]
            } else {
                vec!["--user-group"]
            };
            let mut args = prefix;
            args.extend(
                [
                    "--system",
                    "--shell",
                    shell,
                    "--home-dir",
                    home,
                    "--create-home",
                ]
                .map(String::from),
            );
            args.extend(group_args.iter().map(|s| (*s).to_owned()));
            args.push(name.to_owned());
            run("useradd", &args)?;
            return Ok(Outcome::Changed(
                format!("created system user (home {home}, shell {shell})"),
                None,
            ));
        };
        let mut drift = Vec::new();
        if account.home != spec.home.as_path() {
            drift.push(format!("home {} -> {home}", account.home.display()));
        }
        if account.shell != spec.shell.as_path() {
            drift.push(format!("shell {} -> {shell}", account.shell.display()));
        }
        if drift.is_empty() {
            return Ok(Outcome::Ok(format!(
                "exists (uid {}, home {home}, shell {shell})",
                account.uid
            )));
        }
        let drift = drift.join(", ");
        if self.options.check {
            return Ok(Outcome::Changed(format!("would change {drift}"), None));
        }
        require_root("changing a user")?;
        let mut args = prefix;
        args.extend(["--home", home, "--shell", shell, name].map(String::from));
        run("usermod", &args)?;
        Ok(Outcome::Changed(format!("changed {drift}"), None))
    }

    /// uid and gid for an owner pair; `None` only under `--check` when the plan's own user
    /// is still to be created by the user step.
    fn ids(&self, owner: &AccountName, group: &AccountName) -> Result<Option<(u32, u32)>, String> {
        let db_error = |e: io::Error| format!("cannot read the user database: {e}");
        let uid = self.accounts.uid(owner.as_str()).map_err(db_error)?;
        let gid = self.accounts.gid(group.as_str()).map_err(db_error)?;
        match (uid, gid) {
            (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
            _ if self.options.check
                && [owner, group].iter().any(|n| **n == self.plan.user.name) =>
            {
                Ok(None)
            }
            (None, _) => Err(format!(
                "user {owner} does not exist; create it or change the owner in the role file"
            )),
            (_, None) => Err(format!(
                "group {group} does not exist; create it or change the group in the role file"
            )),
        }
    }

    /// Compares and, unless checking, fixes owner and mode of an existing path.
    fn fix_metadata(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        ids: Option<(u32, u32)>,
        mode: Mode,
        what: &str,
    ) -> StepResult {
        let mut drift = Vec::new();
        let current_mode = meta.mode() & 0o7777;
        if current_mode != mode.bits() {
            drift.push(format!("mode {current_mode:04o} -> {mode}"));
        }
        match ids {
            Some((uid, gid)) if (meta.uid(), meta.gid()) != (uid, gid) => {
                drift.push(format!(
                    "owner {}:{} -> {uid}:{gid}",
                    meta.uid(),
                    meta.gid()
                ));
            }
            Some(_) => {}
            None => drift.push("owner -> the user created above".into()),
        }
        if drift.is_empty() {
            return Ok(Outcome::Ok(what.to_owned()));
        }
        let drift = drift.join(", ");
        if self.options.check {
            return Ok(Outcome::Changed(format!("would fix {drift}"), None));
        }
        // chown first: it clears set-id bits that the mode may ask for.
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown failed: {e}"))?;
        }
        fs::set_permissions(path, Permissions::from_mode(mode.bits()))
            .map_err(|e| format!("chmod failed: {e}"))?;
        Ok(Outcome::Changed(format!("fixed {drift}"), None))
    }

    fn directory(&self, dir: &DirectorySpec) -> StepResult {
        let path = self.path(dir.path.as_path());
        let ids = self.ids(&dir.owner, &dir.group)?;
        let wanted = format!("{}:{} {}", dir.owner, dir.group, dir.mode);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.options.check {
                    return Ok(Outcome::Changed(format!("would create, {wanted}"), None));
                }
                let (uid, gid) = ids.unwrap_or((0, 0));
                create_dir(&path, dir.mode, uid, gid).map_err(|e| format!("cannot create it: {e}"))?;
                Ok(Outcome::Changed(format!("created, {wanted}"), None))
            }
            Err(e) => Err(format!("cannot inspect it: {e}")),
            Ok(meta) if meta.file_type().is_symlink() => {
                Err("it is a symlink; replace it with a directory (ownership is never changed through links)".into())
            }
            Ok(meta) if !meta.is_dir() => Err("it exists but is not a directory; move it away".into()),
            Ok(meta) => self.fix_metadata(&path, &meta, ids, dir.mode, &wanted),
        }
    }

    fn read_optional(path: &Path) -> Result<Option<String>, String> {
        match fs::read(path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| "it is not UTF-8 text; fix or remove it".into()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("cannot read it: {e}")),
        }
    }

    /// The step's result, and whether the content changed (or would): a reason to restart,
    /// which fixing only owner or mode is not.
    fn env_file(&self, env: &EnvFileSpec) -> (StepResult, bool) {
        let mut content_changed = false;
        let result = self.env_file_step(env, &mut content_changed);
        (result, content_changed)
    }

    fn env_file_step(&self, env: &EnvFileSpec, content_changed: &mut bool) -> StepResult {
        let path = self.path(env.path.as_path());
        let ids = self.ids(&env.owner, &env.group)?;
        let current = Self::read_optional(&path)?;
        let planned = merge_env(current.as_deref(), env);
        let wanted = format!("{}:{} {}", env.owner, env.group, env.mode);
        if current.as_deref() == Some(planned.as_str()) {
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("cannot inspect it: {e}"))?;
            return self.fix_metadata(
                &path,
                &meta,
                ids,
                env.mode,
                &format!("{wanted}, every key present"),
            );
        }
        *content_changed = true;
        let added = missing_keys(current.as_deref(), env).join(", ");
        let diff = self.options.diff.then(|| {
            unified_diff(
                env.path.as_str(),
                &hide_values(current.as_deref().unwrap_or("")),
                &hide_values(&planned),
            )
        });
        let verb = if current.is_some() {
            format!("add {added}")
        } else {
            format!("create with {added}")
        };
        if self.options.check {
            return Ok(Outcome::Changed(format!("would {verb}"), diff));
        }
        let Some((uid, gid)) = ids else {
            return Err(format!(
                "owner {}:{} does not exist yet",
                env.owner, env.group
            ));
        };
        if !path.parent().is_some_and(Path::is_dir) {
            return Err(format!(
                "its directory does not exist; add a [[directory]] entry for {}",
                env.path
                    .as_path()
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .display()
            ));
        }
        write_atomically(&path, planned.as_bytes(), env.mode, uid, gid)
            .map_err(|e| format!("cannot write it: {e}"))?;
        Ok(Outcome::Changed(format!("{}, {wanted}", past(&verb)), diff))
    }

    /// The step's result, and whether the unit text changed (or would): `name`'s file, with
    /// `planned` (the rendered text, or why it could not be rendered).
    fn unit_file(&self, name: &str, planned: Result<String, String>) -> (StepResult, bool) {
        self.root_file(&Path::new("/etc/systemd/system").join(name), planned)
    }

    /// As [`Host::unit_file`] for any file root owns and everyone may read (`display` is its
    /// path on the host, under `--root` when set).
    fn root_file(&self, display: &Path, planned: Result<String, String>) -> (StepResult, bool) {
        let mut content_changed = false;
        let result =
            planned.and_then(|text| self.root_file_step(display, &text, &mut content_changed));
        (result, content_changed)
    }

    fn root_file_step(
        &self,
        display: &Path,
        planned: &str,
        content_changed: &mut bool,
    ) -> StepResult {
        let path = self.path(display);
        let current = Self::read_optional(&path)?;
        let root_0644 = Mode::new(0o644).map_err(|e| e.to_string())?;
        if current.as_deref() == Some(planned) {
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("cannot inspect it: {e}"))?;
            return self.fix_metadata(
                &path,
                &meta,
                Some((0, 0)),
                root_0644,
                "up to date, root:root 0644",
            );
        }
        *content_changed = true;
        let diff = self.options.diff.then(|| {
            unified_diff(
                &display.display().to_string(),
                current.as_deref().unwrap_or(""),
                planned,
            )
        });
        let (verb, done) = if current.is_some() {
            ("update", "updated")
        } else {
            ("install", "installed")
        };
        if self.options.check {
            return Ok(Outcome::Changed(
                format!("would {verb} {}", display.display()),
                diff,
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        write_atomically(&path, planned.as_bytes(), root_0644, 0, 0)
            .map_err(|e| format!("cannot write it: {e}"))?;
        Ok(Outcome::Changed(
            format!("{done} {}, root:root 0644", display.display()),
            diff,
        ))
    }

    fn daemon_reload(&self, unit_changed: bool) -> StepResult {
        if let Some(reason) = &self.systemctl_unavailable {
            return Ok(Outcome::Skipped(reason.clone()));
        }
        if !unit_changed {
            return Ok(Outcome::Ok("unit unchanged".into()));
        }
        if self.options.check {
            return Ok(Outcome::Changed(
                "would reload: the unit changed".into(),
                None,
            ));
        }
        run(&self.systemctl(), &["daemon-reload".to_owned()])?;
        Ok(Outcome::Changed("reloaded: the unit changed".into(), None))
    }

    fn restart(&self, changed: Changed) -> StepResult {
        if let Some(reason) = &self.systemctl_unavailable {
            return Ok(Outcome::Skipped(reason.clone()));
        }
        let why = match (changed.unit || changed.socket, changed.env) {
            (false, false) => return Ok(Outcome::Ok("unit and env file unchanged".into())),
            (true, false) => "the unit changed",
            (false, true) => "the env file changed",
            (true, true) => "the unit and the env file changed",
        };
        if self.options.check {
            return Ok(Outcome::Changed(format!("would restart: {why}"), None));
        }
        let service = self.plan.unit_name();
        match (changed.socket, self.plan.socket_unit_name()) {
            // The listening sockets change: systemd must close the old ones before it binds
            // the new ones, which it cannot while the service still holds them.
            (true, Some(socket)) => {
                run(
                    &self.systemctl(),
                    &["stop".into(), service.clone(), socket.clone()],
                )?;
                run(&self.systemctl(), &["start".into(), socket, service])?;
            }
            _ => run(&self.systemctl(), &["restart".to_owned(), service])?,
        }
        Ok(Outcome::Changed(format!("restarted: {why}"), None))
    }

    /// Restarts keepalived when its unit changed, reloads it when only its configuration did.
    fn restart_keepalived(&self, changed: PairChanged) -> StepResult {
        if let Some(reason) = &self.systemctl_unavailable {
            return Ok(Outcome::Skipped(reason.clone()));
        }
        let (verb, why) = match (changed.unit, changed.conf) {
            (false, false) => return Ok(Outcome::Ok("unit and configuration unchanged".into())),
            (true, _) => ("restart", "the unit changed"),
            (false, true) => ("reload", "the configuration changed"),
        };
        if self.options.check {
            return Ok(Outcome::Changed(format!("would {verb}: {why}"), None));
        }
        run(
            &self.systemctl(),
            &[verb.to_owned(), KeepalivedSpec::UNIT.to_owned()],
        )?;
        Ok(Outcome::Changed(format!("{verb}ed: {why}"), None))
    }

    /// (Re)starts a scheduled service's timer when it changed (a new schedule, or the first
    /// install); the service itself is left to the schedule.
    fn restart_timer(&self, timer: &str, changed: Changed) -> StepResult {
        if let Some(reason) = &self.systemctl_unavailable {
            return Ok(Outcome::Skipped(reason.clone()));
        }
        if !changed.timer {
            let next = if changed.unit || changed.env {
                "timer unchanged; the next run uses the new unit and env file"
            } else {
                "timer unchanged"
            };
            return Ok(Outcome::Ok(next.into()));
        }
        if self.options.check {
            return Ok(Outcome::Changed(
                "would restart: the schedule changed".into(),
                None,
            ));
        }
        run(&self.systemctl(), &["restart".to_owned(), timer.to_owned()])?;
        Ok(Outcome::Changed(
            "restarted: the schedule changed".into(),
            None,
        ))
    }

    fn enable(&self, unit: &str) -> StepResult {
        if !self.plan.service.enable {
            return Ok(Outcome::Skipped("enable = false in the role file".into()));
        }
        if let Some(reason) = &self.systemctl_unavailable {
            return Ok(Outcome::Skipped(reason.clone()));
        }
        let state = Process::new(self.systemctl())
            .args(["is-enabled", unit])
            .output()
            .map_err(|e| format!("cannot run systemctl: {e}"))?;
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        if state == "enabled" {
            return Ok(Outcome::Ok("enabled".into()));
        }
        if self.options.check {
            return Ok(Outcome::Changed(
                format!(
                    "would enable (now {})",
                    if state.is_empty() { "unknown" } else { &state }
                ),
                None,
            ));
        }
        run(&self.systemctl(), &["enable".to_owned(), unit.to_owned()])?;
        Ok(Outcome::Changed("enabled".into(), None))
    }
}

fn past(verb: &str) -> String {
    verb.replacen("create", "created", 1)
        .replacen("add ", "added ", 1)
}

fn require_root(what: &str) -> Result<(), String> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(format!(
            "{what} needs root; run as root, or preview with --check"
        ))
    }
}

fn run(program: &str, args: &[String]) -> Result<(), String> {
    let output = Process::new(program).args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{program} is not installed; install it (Debian: passwd for useradd, systemd for systemctl)")
        } else {
            format!("cannot run {program}: {e}")
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        stderr.trim()
    ))
}

/// Creates `path` (parents root-owned 0755, as `install -d` does) with exact mode and owner.
fn create_dir(path: &Path, mode: Mode, uid: u32, gid: u32) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    DirBuilder::new().mode(0o700).create(path)?;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    // Set after chown, and explicitly: DirBuilder's mode is filtered by the umask.
    fs::set_permissions(path, Permissions::from_mode(mode.bits()))
}

/// Writes through a temporary file in the same directory and a rename, so readers (and a
/// crash) see either the old file or the complete new one, never a partial write.
fn write_atomically(
    path: &Path,
    contents: &[u8],
    mode: Mode,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut temp = tempfile::Builder::new()
        .prefix(".veza-provision.")
        .tempfile_in(dir)?;
    temp.write_all(contents)?;
    std::os::unix::fs::fchown(temp.as_file(), Some(uid), Some(gid))?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(mode.bits()))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

fn env_key(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    line.split_once('=').map(|(key, _)| key.trim())
}

fn missing_keys(current: Option<&str>, env: &EnvFileSpec) -> Vec<String> {
    let present: Vec<&str> = current
        .map(|c| c.lines().filter_map(env_key).collect())
        .unwrap_or_default();
    env.defaults
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !present.contains(k))
        .map(str::to_owned)
        .collect()
}

/// The env file with every default key present; existing lines are kept byte for byte.
fn merge_env(current: Option<&str>, env: &EnvFileSpec) -> String {
    let mut text = match current {
        Some(current) => current.to_owned(),
        None => "# Managed by veza-provision: keys are added when missing, values are never overwritten.\n\
                 # Put secrets here; this file is readable by the service group only.\n"
            .to_owned(),
    };
    let missing = missing_keys(current, env);
    if !missing.is_empty() && !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for key in missing {
        let Some((name, value)) = env.defaults.iter().find(|(k, _)| k.as_str() == key) else {
            continue;
        };
        text.push_str(&format!("{name}={value}\n"));
    }
    text
}

/// Replaces every value with a marker so diffs never print secrets.
fn hide_values(text: &str) -> String {
    text.lines()
        .map(|line| match env_key(line) {
            Some(key) => format!("{key}=<value hidden>\n"),
            None => format!("{line}\n"),
        })
        .collect()
}

fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (current)"), &format!("{name} (planned)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use systemd_unit::{AbsPath, EnvName};

    use super::*;
    use crate::plan::EnvValue;

    fn env(defaults: &[(&str, &str)]) -> EnvFileSpec {
        EnvFileSpec {
            path: AbsPath::new("/etc/veza/x.env").unwrap(),
            owner: AccountName::new("root").unwrap(),
            group: AccountName::new("veza-api").unwrap(),
            mode: Mode::new(0o640).unwrap(),
            defaults: defaults
                .iter()
                .map(|(k, v)| (EnvName::new(*k).unwrap(), EnvValue::new(*v).unwrap()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn merge_keeps_existing_values_and_adds_missing_keys() {
        let spec = env(&[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "postgres://localhost/veza"),
            ("PORT", "8080"),
        ]);
        let current = "# ops\nDATABASE_URL=postgres://secret@db/veza\nEXTRA=1";
        let merged = merge_env(Some(current), &spec);
        assert_eq!(
            merged,
            "# ops\nDATABASE_URL=postgres://secret@db/veza\nEXTRA=1\nAPP_ENV=production\nPORT=8080\n"
        );
        assert_eq!(
            merge_env(Some(&merged), &spec),
            merged,
            "merging is idempotent"
        );
        let fresh = merge_env(None, &spec);
        assert!(
            fresh.ends_with(
                "APP_ENV=production\nDATABASE_URL=postgres://localhost/veza\nPORT=8080\n"
            ),
            "{fresh}"
        );
    }

    #[test]
    fn diffs_hide_env_values() {
        let hidden = hide_values("# c\nSECRET=hunter2\n");
        assert_eq!(hidden, "# c\nSECRET=<value hidden>\n");
        let diff = unified_diff("/etc/veza/x.env", "", &hidden);
        assert!(
            diff.contains("+SECRET=<value hidden>") && !diff.contains("hunter2"),
            "{diff}"
        );
    }

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temp_file() {
        let dir = testkit::temp_dir();
        let path = dir.path().join("unit.service");
        fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new", Mode::new(0o644).unwrap(), 0, 0).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
