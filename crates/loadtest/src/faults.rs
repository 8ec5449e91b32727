//! Faults during a run: stopping, starting, freezing and resuming backend servers, and
//! upgrading or reloading the balancer, at the scenario's times, through whatever reaches them
//! (the caller's [`Faults`]; shell commands for a deployed edge).

use std::future::Future;
use std::pin::Pin;

use crate::scenario::{Fault, FaultAction, Scenario};

/// Applies faults to backend servers and to the balancer.
pub trait Faults {
    /// Applies `fault`; the error says why it could not be.
    fn apply<'a>(
        &'a mut self,
        fault: &'a Fault,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;
}

/// For runs without a way to reach the servers: every fault fails, saying so.
pub struct NoFaults;

impl Faults for NoFaults {
    fn apply<'a>(
        &'a mut self,
        fault: &'a Fault,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>> {
        Box::pin(async move {
            Err(format!(
                "cannot {} {}: no fault commands given",
                fault.action.as_str(),
                fault.server
            ))
        })
    }
}

/// Faults on a deployed edge: the operator's shell commands (`sh -c`), `{server}` replaced
/// by the server's name, e.g. `incus stop --force {server}`, `{delay_ms}` by a delay's
/// milliseconds and `{percent}` by a loss's share; one command per kind of fault.
#[derive(Debug, Clone, Default)]
pub struct ShellFaults {
    commands: Vec<(FaultAction, String)>,
}

/// Every kind of fault, in the order `covers` names missing commands.
const ACTIONS: [FaultAction; 10] = [
    FaultAction::Stop,
    FaultAction::Start,
    FaultAction::Hang,
    FaultAction::Resume,
    FaultAction::Delay,
    FaultAction::Loss,
    FaultAction::Heal,
    FaultAction::Dns,
    FaultAction::Upgrade,
    FaultAction::Reload,
];

impl ShellFaults {
    /// Commands that stop and start a server.
    pub fn new(stop: Option<String>, start: Option<String>) -> ShellFaults {
        ShellFaults::default()
            .with(FaultAction::Stop, stop)
            .with(FaultAction::Start, start)
    }

    /// Adds the command of `action`, if given.
    #[must_use]
    pub fn with(mut self, action: FaultAction, command: Option<String>) -> ShellFaults {
        if let Some(command) = command {
            self.commands.retain(|(a, _)| *a != action);
            self.commands.push((action, command));
        }
        self
    }

    fn command(&self, action: FaultAction) -> Option<&str> {
        (self.commands.iter())
            .find(|(a, _)| *a == action)
            .map(|(_, c)| c.as_str())
    }

    /// Whether every fault of `scenario` has its command; checked before the run.
    pub fn covers(&self, scenario: &Scenario) -> Result<(), String> {
        let missing: Vec<String> = ACTIONS
            .into_iter()
            .filter(|action| {
                self.command(*action).is_none()
                    && scenario.faults.iter().any(|f| f.action == *action)
            })
            .map(|action| format!("--{}-cmd", action.as_str()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the scenario's faults need commands: give {}",
                missing.join(" and ")
            ))
        }
    }
}

impl Faults for ShellFaults {
    fn apply<'a>(
        &'a mut self,
        fault: &'a Fault,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>> {
        Box::pin(async move {
            let Some(template) = self.command(fault.action) else {
                return Err(format!("no --{}-cmd given", fault.action.as_str()));
            };
            let delay_ms = fault.by.map_or(0, |by| by.as_millis()).to_string();
            let percent = fault.percent.unwrap_or(0).to_string();
            let command = template
                .replace("{server}", &fault.server)
                .replace("{delay_ms}", &delay_ms)
                .replace("{percent}", &percent);
            let status = tokio::process::Command::new("sh")
                .args(["-c", &command])
                .status()
                .await
                .map_err(|e| format!("cannot run `{command}`: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("`{command}` failed ({status})"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(faults: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nduration = \"10s\"\n[load]\nexecutor = \"vus\"\nstages = [{{ duration = \"1s\", target = 1 }}]\n[[flow]]\nname = \"a\"\nkind = \"api\"\nsteps = [{{ path = \"/\" }}]\n{faults}"
        );
        Scenario::parse(&text, None).unwrap()
    }

    #[tokio::test]
    async fn shell_commands_run_with_the_server_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut faults = ShellFaults::new(
            Some(format!("echo stop {{server}} >> {}", log.display())),
            Some("exit 3".into()),
        );
        let stop = Fault {
            at: std::time::Duration::ZERO,
            action: FaultAction::Stop,
            server: "backend-api-1".into(),
            by: None,
            percent: None,
        };
        faults.apply(&stop).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "stop backend-api-1\n"
        );
        let start = Fault {
            action: FaultAction::Start,
            ..stop
        };
        let error = faults.apply(&start).await.unwrap_err();
        assert!(error.contains("`exit 3` failed"), "{error}");
        let mut faults = faults.with(
            FaultAction::Delay,
            Some(format!(
                "echo delay {{server}} {{delay_ms}} >> {}",
                log.display()
            )),
        );
        let delay = Fault {
            action: FaultAction::Delay,
            by: Some(std::time::Duration::from_millis(150)),
            ..start
        };
        faults.apply(&delay).await.unwrap();
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .ends_with("delay backend-api-1 150\n")
        );
    }

    #[test]
    fn missing_commands_are_named_before_the_run() {
        let both = scenario(
            "[[fault]]\nat = \"1s\"\nstop = \"s\"\n[[fault]]\nat = \"2s\"\nstart = \"s\"\n",
        );
        let error = ShellFaults::new(None, None).covers(&both).unwrap_err();
        assert_eq!(
            error,
            "the scenario's faults need commands: give --stop-cmd and --start-cmd"
        );
        let only_stop = scenario("[[fault]]\nat = \"1s\"\nstop = \"s\"\n");
        assert!(
            ShellFaults::new(Some("true".into()), None)
                .covers(&only_stop)
                .is_ok()
        );
        assert!(ShellFaults::default().covers(&scenario("")).is_ok());
        let upgrade = scenario("[[fault]]\nat = \"1s\"\nlb = \"upgrade\"\n");
        assert_eq!(
            ShellFaults::default().covers(&upgrade).unwrap_err(),
            "the scenario's faults need commands: give --upgrade-cmd"
        );
        assert!(
            ShellFaults::default()
                .with(FaultAction::Upgrade, Some("true".into()))
                .covers(&upgrade)
                .is_ok()
        );
    }
}
