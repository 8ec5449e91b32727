//! One client's session, as HAProxy's CLI runs it: its mode (non-interactive: answer the lines
//! already sent, then close; interactive after `prompt`: a `> ` after every answer, until
//! `quit`, the idle timeout or the client closes), its idle timeout (`set timeout cli`) and
//! its access level (the socket's, lowered by `operator` or `user`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::command::{Command, parse, reply, required_level};
use super::execute::execute;
use super::protocol::{LineReader, split_commands};
use super::{IDLE_TIMEOUT, MAX_LINE};
use crate::config::AccessLevel;
use crate::observe::source::StatsSource;

/// HAProxy's answer to a command above the session's level.
const PERMISSION_DENIED: &str = "Permission denied";

/// What a client may do and how it is answered.
#[derive(Debug)]
struct Session {
    level: AccessLevel,
    interactive: bool,
    idle: Duration,
}

/// What one command asks of the connection.
enum Step {
    /// Write this answer (its empty line included) and go on.
    Answer(String),
    /// `quit`: close without an answer.
    Quit,
}

impl Session {
    fn new(level: AccessLevel) -> Self {
        Self {
            level,
            interactive: false,
            idle: IDLE_TIMEOUT,
        }
    }

    /// Runs one command: the session's own here, the proxy's through `execute`. The level is
    /// checked first, as HAProxy does.
    async fn run(&mut self, text: &str, source: &StatsSource) -> Step {
        if required_level(text) > self.level {
            return Step::Answer(reply(PERMISSION_DENIED));
        }
        let answer = match parse(text) {
            Command::Quit => return Step::Quit,
            Command::Prompt => {
                self.interactive = !self.interactive;
                "\n".to_owned()
            }
            Command::SetTimeout(idle) => {
                self.idle = idle;
                "\n".to_owned()
            }
            Command::LowerLevel(level) => {
                self.level = self.level.min(level);
                "\n".to_owned()
            }
            Command::ShowLevel => reply(self.level),
            command => execute(command, source).await,
        };
        Step::Answer(answer)
    }

    /// What follows every answer: HAProxy's `> ` prompt in interactive mode.
    fn prompt(&self) -> &'static str {
        if self.interactive { "> " } else { "" }
    }
}

/// Serves one client on a socket of `level`.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    level: AccessLevel,
    source: &StatsSource,
) {
    let mut session = Session::new(level);
    let mut lines = LineReader::default();
    loop {
        let line = match lines.next_line(&mut stream, MAX_LINE, session.idle).await {
            Ok(line) => line,
            Err(why) => {
                tracing::debug!("runtime API client dropped: {why:?}");
                return;
            }
        };
        for command in split_commands(&line) {
            let Step::Answer(mut answer) = session.run(&command, source).await else {
                let _ = timeout(session.idle, stream.shutdown()).await;
                return;
            };
            answer.push_str(session.prompt());
            let written = timeout(session.idle, stream.write_all(answer.as_bytes())).await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
        }
        if !session.interactive && !lines.has_pending() {
            break;
        }
    }
    let _ = timeout(session.idle, stream.shutdown()).await;
}
