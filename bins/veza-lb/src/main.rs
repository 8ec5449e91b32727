//! `veza-lb`: Veza's load balancer.
//!
//! ```text
//! veza-lb [run] -c FILE          serve (the default)
//! veza-lb check -c FILE          validate the configuration, like `haproxy -c`
//! veza-lb ctl [--socket ADDR] COMMAND...   talk to the runtime API
//! ```

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod probe;
mod top;

#[derive(Parser, Debug)]
#[command(
    name = "veza-lb",
    version,
    about = "Veza's load balancer",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve with the given configuration (the default).
    Run(RunArgs),
    /// Validate a configuration file and exit: 0 when valid, 1 with every error otherwise.
    Check {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Also resolve the servers written `name:port` (with `[global] resolvers`, or the
        /// system's), as a start would.
        #[arg(long)]
        resolve: bool,
    },
    /// Send a command to the runtime API and print the answer (`help` lists commands).
    Ctl {
        /// Runtime API address: `host:port` or `unix:/path`.
        #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
        socket: String,
        /// The command, e.g. `show stat` or `set server api_pool/backend-api-1 state drain`;
        /// `top [--once]` shows `show stat` as a live table, refreshed every second. State
        /// changes need a socket of level `admin` (a unix socket by default; TCP sockets are
        /// `operator`): when refused, ctl says which level the command needs and exits 1.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// GET a URL (a frontend's `monitor_uri`) within a deadline: exit 0 on 2xx, 1 otherwise,
    /// with the reason on stderr. keepalived's `vrrp_script` runs it.
    Probe {
        /// e.g. `http://127.0.0.1:8080/veza-lb/health`.
        url: String,
        /// The whole exchange's deadline (connect, send, status line).
        #[arg(long, default_value = "1s", value_parser = proxy::config::parse_duration)]
        timeout: std::time::Duration,
        /// Keep probing for this long, every `--every`, and fail at the first failure: one
        /// run of keepalived's whole-second script then watches the whole second.
        #[arg(long = "for", value_name = "DURATION", value_parser = proxy::config::parse_duration)]
        watch: Option<std::time::Duration>,
        /// Pause between two probes with `--for`.
        #[arg(long, default_value = "100ms", value_parser = proxy::config::parse_duration)]
        every: std::time::Duration,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", global = false)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `warn,access=info`); overrides RUST_LOG.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

fn init_logs(args: &RunArgs) {
    let filter = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("veza-lb: invalid log filter {filter:?} ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colours only for a person at a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    // Under systemd, stderr goes to the journal, which stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (args.log_format, journald) {
        (LogFormat::Human, false) => builder.init(),
        (LogFormat::Human, true) => builder.without_time().init(),
        (LogFormat::Json, _) => builder.json().init(),
    }
}

/// Heap profiling for `cargo xtask bench` (feature `dhat-heap`): every allocation counted.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// mimalloc: per-thread free lists, no consolidation passes. hyper's HTTP/2 and rustls
/// allocate per stream and per record, and glibc's malloc was 7% of an HTTP/2 request.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Prints `dhat: Total: N bytes in M blocks` to stderr when `main` returns.
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::builder()
        .file_name(std::env::temp_dir().join(format!("veza-lb-dhat-{}.json", std::process::id())))
        .build();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { config, resolve }) => check(&config, resolve),
        Some(Command::Ctl { socket, command }) if command.first().is_some_and(|c| c == "top") => {
            top(&socket, &command[1..])
        }
        Some(Command::Ctl { socket, command }) => ctl(&socket, &command.join(" ")),
        Some(Command::Run(args)) => run(&args),
        Some(Command::Probe {
            url,
            timeout,
            watch,
            every,
        }) => match probe::watch(&url, timeout, watch.unwrap_or_default(), every) {
            Ok(_) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("veza-lb probe: {why}");
                ExitCode::FAILURE
            }
        },
        None => run(&cli.run),
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let Some(config) = &args.config else {
        eprintln!("veza-lb: no configuration file: use `veza-lb -c FILE`");
        return ExitCode::from(2);
    };
    init_logs(args);
    let options = proxy::daemon::RunOptions {
        config_path: config.clone(),
    };
    match proxy::daemon::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veza-lb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, resolve: bool) -> ExitCode {
    match proxy::config::Config::load(path) {
        Ok(config) => {
            for w in config.warnings() {
                eprintln!("warning: {w}");
            }
            println!("{}", config.summary());
            if resolve {
                match proxy::daemon::resolve_names(&config) {
                    Ok(names) => {
                        for (name, addr) in names {
                            println!("{name} resolves to {addr}");
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn ask(socket: &str, command: &str) -> std::io::Result<String> {
    match socket.strip_prefix("unix:") {
        Some(path) => {
            std::os::unix::net::UnixStream::connect(path).and_then(|s| exchange(s, command))
        }
        None => std::net::TcpStream::connect(socket).and_then(|s| exchange(s, command)),
    }
}

fn top(socket: &str, args: &[String]) -> ExitCode {
    let once = match args {
        [] => false,
        [flag] if flag == "--once" => true,
        _ => {
            eprintln!(
                "veza-lb ctl top: unexpected arguments {args:?}; usage: veza-lb ctl top [--once]"
            );
            return ExitCode::from(2);
        }
    };
    let fetch = || {
        ask(socket, "show stat")
            .map_err(|e| format!("cannot talk to the runtime API at {socket}: {e}"))
    };
    match top::run(fetch, once, std::time::Duration::from_secs(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veza-lb ctl top: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(socket: &str, command: &str) -> ExitCode {
    match ask(socket, command) {
        Ok(text) if text.contains("Permission denied\n") => {
            print!("{text}");
            let needed = proxy::required_level(command);
            eprintln!(
                "veza-lb ctl: `{command}` needs the {needed} level; the runtime API at {socket} \
                 grants less (`veza-lb ctl --socket {socket} show cli level` says which). Use a \
                 socket configured with that level, e.g. the unix socket (admin by default): \
                 stats_socket = [\"unix:/run/veza-lb/admin.sock\", \"127.0.0.1:9100\"]"
            );
            ExitCode::FAILURE
        }
        Ok(text) if text.starts_with("Upgrade failed") => {
            print!("{text}");
            ExitCode::FAILURE
        }
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("veza-lb ctl: cannot talk to the runtime API at {socket}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn exchange<S: Read + Write>(mut stream: S, command: &str) -> std::io::Result<String> {
    stream.write_all(command.as_bytes())?;
    stream.write_all(b"\n")?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}
