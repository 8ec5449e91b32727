//! Rendering a [`Unit`] to unit-file text with askama.

use askama::Template;

use crate::Error;
use crate::model::{Hardening, Service, SocketUnit, TimerUnit, Unit};
use crate::value::{AbsPath, EnvName, quote_word};

/// The askama context. `escape = "none"`: systemd quoting is done by the value types, never by
/// an HTML escaper.
#[derive(Template)]
#[template(path = "service.unit", escape = "none")]
struct ServiceUnitTemplate<'a> {
    unit: &'a Unit,
    s: &'a Service,
    h: &'a Hardening,
}

impl ServiceUnitTemplate<'_> {
    fn yn(&self, flag: &bool) -> &'static str {
        if *flag { "yes" } else { "no" }
    }

    fn paths(&self, paths: &[AbsPath]) -> String {
        paths
            .iter()
            .map(AbsPath::list_word)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn assignment(&self, name: &EnvName, value: &str) -> String {
        // Environment= unquotes and C-unescapes but does not expand `$`.
        quote_word(&format!("{name}={value}"))
    }
}

/// The askama context of a socket unit (addresses and names are validated values).
#[derive(Template)]
#[template(path = "socket.unit", escape = "none")]
struct SocketUnitTemplate<'a> {
    unit: &'a SocketUnit,
}

impl SocketUnit {
    /// Renders the unit file text.
    ///
    /// # Errors
    /// [`Error::Render`] if askama fails.
    pub fn render(&self) -> Result<String, Error> {
        let mut text = SocketUnitTemplate { unit: self }
            .render()
            .map_err(|e| Error::Render(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

/// The askama context of a timer unit.
#[derive(Template)]
#[template(path = "timer.unit", escape = "none")]
struct TimerUnitTemplate<'a> {
    unit: &'a TimerUnit,
}

impl TimerUnit {
    /// Renders the unit file text.
    ///
    /// # Errors
    /// [`Error::Render`] if askama fails.
    pub fn render(&self) -> Result<String, Error> {
        let mut text = TimerUnitTemplate { unit: self }
            .render()
            .map_err(|e| Error::Render(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

impl Unit {
    /// Renders the unit file text.
    ///
    /// # Errors
    /// [`Error::Render`] if askama fails (it does not for well-formed models; the error exists
    /// because askama's API is fallible).
    pub fn render(&self) -> Result<String, Error> {
        let mut text = ServiceUnitTemplate {
            unit: self,
            s: &self.service,
            h: &self.service.hardening,
        }
        .render()
        .map_err(|e| Error::Render(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::parse::{command_words, parse, split_words, unescape_specifiers};
    use crate::{AbsPath, AccountName, Command, IpAddressSpec, Role, ServiceSpec, Text, Timespan};

    fn spec(role: Role) -> ServiceSpec {
        ServiceSpec {
            role,
            description: Text::new("Veza 100% test").unwrap(),
            user: AccountName::new("veza-lb").unwrap(),
            exec_start: Command::new(AbsPath::new("/opt/veza/lb/veza-lb").unwrap())
                .args(["-c", "/etc/veza/lb dir/veza-lb.toml", "$HOME"])
                .unwrap(),
            working_directory: Some(AbsPath::new("/opt/veza/lb").unwrap()),
            env_file: Some(AbsPath::new("/etc/veza/lb.env").unwrap()),
            read_write_paths: vec![
                AbsPath::new("/var/log/veza").unwrap(),
                AbsPath::new("/var/lib/veza lb").unwrap(),
            ],
            ip_address_allow: Some(vec![
                IpAddressSpec::Localhost,
                "10.0.0.0/8".parse().unwrap(),
            ]),
            listen_ports: vec![8080],
            sockets: Vec::new(),
            jit: false,
            watchdog: Some(Timespan::from_secs(30)),
            stop_timeout: Timespan::from_secs(35),
            schedule: None,
            start_timeout: None,
        }
    }

    #[test]
    fn lb_unit_reads_back_as_modelled() {
        let text = spec(Role::Lb).unit().unwrap().render().unwrap();
        let unit = parse(&text).unwrap();
        let names: Vec<_> = unit.sections.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Unit", "Service", "Install"]);
        assert_eq!(unit.value("Service", "Type"), Some("notify"));
        assert_eq!(unit.value("Service", "WatchdogSec"), Some("30s"));
        assert_eq!(unit.value("Service", "NotifyAccess"), Some("main"));
        assert_eq!(
            command_words(unit.value("Service", "ExecReload").unwrap()).unwrap(),
            ["/bin/sh", "-c", "kill -HUP \"$1\"", "reload", "${MAINPID}"]
        );
        assert_eq!(
            command_words(unit.value("Service", "ExecStart").unwrap()).unwrap(),
            [
                "/opt/veza/lb/veza-lb",
                "-c",
                "/etc/veza/lb dir/veza-lb.toml",
                "$HOME"
            ]
        );
        assert_eq!(
            unescape_specifiers(unit.value("Unit", "Description").unwrap()).unwrap(),
            "Veza 100% test"
        );
        assert_eq!(
            split_words(unit.value("Service", "ReadWritePaths").unwrap()).unwrap(),
            ["/var/log/veza", "/var/lib/veza lb"]
        );
        assert_eq!(unit.value("Service", "IPAddressDeny"), Some("any"));
        assert_eq!(
            unit.value("Service", "IPAddressAllow"),
            Some("localhost 10.0.0.0/8")
        );
        assert_eq!(
            unit.values("Service", "SystemCallFilter"),
            ["@system-service", "~@privileged @resources"]
        );
        assert_eq!(unit.value("Service", "CapabilityBoundingSet"), Some(""));
        assert_eq!(unit.value("Service", "MemoryDenyWriteExecute"), Some("yes"));
        assert_eq!(unit.value("Service", "PrivateUsers"), Some("yes"));
        assert_eq!(unit.value("Service", "UMask"), Some("0077"));
        assert_eq!(unit.value("Install", "WantedBy"), Some("multi-user.target"));
        assert!(!text.contains("\n\n\n"), "stray blank lines:\n{text}");
    }

    #[test]
    fn non_lb_roles_have_no_notify_or_watchdog() {
        for role in [Role::BackendApi, Role::StreamServer] {
            let unit = parse(&spec(role).unit().unwrap().render().unwrap()).unwrap();
            assert_eq!(unit.value("Service", "Type"), Some("exec"));
            for key in [
                "WatchdogSec",
                "ExecReload",
                "NotifyAccess",
                "RuntimeDirectory",
            ] {
                assert_eq!(unit.value("Service", key), None, "{role:?} has {key}");
            }
        }
    }

    #[test]
    fn relaxations_are_exactly_what_they_say() {
        let base = spec(Role::Lb).unit().unwrap();
        let mut low = spec(Role::Lb);
        low.listen_ports = vec![8080, 443];
        let low = low.unit().unwrap();
        let mut expected = base.service.hardening.clone();
        expected.capability_bounding_set = vec![crate::Capability::NetBindService];
        expected.ambient_capabilities = vec![crate::Capability::NetBindService];
        expected.private_users = false;
        assert_eq!(low.service.hardening, expected);
        let text = low.render().unwrap();
        assert!(text.contains("\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"));

        let mut jit = spec(Role::Lb);
        jit.jit = true;
        let jit = jit.unit().unwrap();
        let mut expected = base.service.hardening.clone();
        expected.memory_deny_write_execute = false;
        assert_eq!(jit.service.hardening, expected);
    }

    #[test]
    fn no_ip_filter_renders_no_ip_directives() {
        let mut s = spec(Role::BackendApi);
        s.ip_address_allow = None;
        let unit = parse(&s.unit().unwrap().render().unwrap()).unwrap();
        assert_eq!(unit.value("Service", "IPAddressDeny"), None);
        assert_eq!(unit.value("Service", "IPAddressAllow"), None);
    }

    proptest! {
        #[test]
        fn any_argument_survives_rendering(args in proptest::collection::vec("[^\0]{0,12}", 0..5)) {
            prop_assume!(args.iter().all(|a| a != ";"));
            let cmd = Command::new(AbsPath::new("/usr/bin/env").unwrap()).args(args.clone()).unwrap();
            let line = format!("ExecStart={cmd}\n");
            let unit = parse(&format!("[Service]\n{line}")).unwrap();
            let mut expected = vec!["/usr/bin/env".to_owned()];
            expected.extend(args);
            prop_assert_eq!(command_words(unit.value("Service", "ExecStart").unwrap()).unwrap(), expected);
        }
    }
}
