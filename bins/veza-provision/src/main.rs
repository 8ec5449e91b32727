//! `veza-provision`: applies a Veza role file to this host (or a `--root` tree), or prints the
//! unit it renders. A thin shell over the `provision` crate.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provision::{Options, Plan, Status};

/// Brings a Veza host to the state its role file describes.
#[derive(Debug, Parser)]
#[command(name = "veza-provision", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create the user, directories, env file and unit; reload, restart and enable as needed.
    Apply {
        /// The role file (TOML), e.g. examples/provision/backend-api.toml.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Work on this directory tree instead of / (no systemctl calls).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Change nothing; report what would change.
        #[arg(long)]
        check: bool,
        /// Print unified diffs of the files that change (env values hidden).
        #[arg(long)]
        diff: bool,
    },
    /// Print the unit the role file renders.
    RenderUnit {
        /// The role file (TOML).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// The unit, e.g. veza-lb or veza-lb.service.
        name: String,
    },
}

/// Exit code for a role file that cannot be used (nothing was changed).
const BAD_INPUT: u8 = 2;
/// Exit code for a step that failed.
const STEP_FAILED: u8 = 1;

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Apply {
            config,
            root,
            check,
            diff,
        } => apply(&config, root, check, diff),
        Cmd::RenderUnit { config, name } => {
            match Plan::load(&config).and_then(|plan| provision::render_unit(&plan, &name)) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("veza-provision: {message}");
    ExitCode::from(BAD_INPUT)
}

/// A tree to provision into (`--root`): the directory, and the account database `useradd
/// --prefix` adds to (`etc/passwd`, `etc/group`, with root alone), made when missing; the
/// report line when something was made.
fn prepare_tree(dir: &std::path::Path) -> std::io::Result<Option<String>> {
    let etc = dir.join("etc");
    let (passwd, group) = (etc.join("passwd"), etc.join("group"));
    if passwd.exists() && group.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(&etc)?;
    let mut made = Vec::new();
    for (path, line) in [
        (&passwd, "root:x:0:0:root:/root:/bin/sh\n"),
        (&group, "root:x:0:\n"),
    ] {
        if !path.exists() {
            std::fs::write(path, line)?;
            made.push(
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into()),
            );
        }
    }
    Ok(Some(format!(
        "changed  tree {}: made etc/{} with root alone (useradd adds the service accounts)",
        dir.display(),
        made.join(" and etc/")
    )))
}

fn apply(config: &std::path::Path, root: Option<PathBuf>, check: bool, diff: bool) -> ExitCode {
    let plan = match Plan::load(config) {
        Ok(plan) => plan,
        Err(e) => return fail(&e.to_string()),
    };
    let mut prepared = None;
    if let Some(dir) = &root
        && !check
    {
        match prepare_tree(dir) {
            Ok(done) => prepared = done,
            Err(e) => return fail(&format!("--root {}: {e}", dir.display())),
        }
    }
    let root = match root
        .map(|dir| dir.canonicalize().map_err(|e| (dir, e)))
        .transpose()
    {
        Ok(root) => root,
        Err((dir, e)) => {
            return fail(&format!(
                "--root {}: {e}; apply without --check creates it",
                dir.display()
            ));
        }
    };
    let target = root
        .as_ref()
        .map_or_else(|| "/".to_owned(), |r| r.display().to_string());
    println!(
        "veza-provision: {} {} on {target}{}",
        plan.role.as_str(),
        config.display(),
        if check {
            " (check: nothing is changed)"
        } else {
            ""
        }
    );
    if let Some(done) = prepared {
        println!("{done}");
    }
    let report = provision::apply(
        &plan,
        &Options {
            root,
            check,
            diff,
            systemctl: None,
        },
    );
    for step in &report.steps {
        println!("{step}");
        if let Some(diff) = &step.diff {
            print!("{diff}");
        }
    }
    if report
        .steps
        .last()
        .is_some_and(|s| s.status == Status::Failed)
    {
        println!("stopped: the remaining steps did not run");
    }
    println!("{}", report.recap());
    if report.failed() {
        ExitCode::from(STEP_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
