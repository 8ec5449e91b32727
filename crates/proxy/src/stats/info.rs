//! `show info`: process-wide information, `Key: value` per line in HAProxy's order.
//!
//! Only the keys that mean something for `veza-lb` are printed (no SSL, pipes, compression or
//! memory pools); tooling reads them by name.

use std::fmt::Write as _;
use std::time::Duration;

/// What `show info` prints, gathered by the runtime API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// `Version`.
    pub version: String,
    /// `Release_date`.
    pub release_date: String,
    /// `Nbthread`: worker threads.
    pub threads: usize,
    /// `Pid`.
    pub pid: u32,
    /// `Uptime`, `Uptime_sec`.
    pub uptime: Duration,
    /// `Start_time_sec`: seconds since the Unix epoch.
    pub start_unix: u64,
    /// `CurrConns`: client connections open now.
    pub current_connections: u64,
    /// `CumConns`: client connections accepted.
    pub total_connections: u64,
    /// `CumReq`: HTTP requests received.
    pub total_requests: u64,
    /// `ConnRate` and `SessRate`: connections during the last second.
    pub connection_rate: u64,
    /// `MaxConnRate` and `MaxSessRate`.
    pub max_connection_rate: u64,
    /// `Idle_pct`: share of the worker threads' time not spent on the CPU, last second.
    pub idle_pct: u8,
    /// `node`: host name.
    pub node: String,
    /// `Stopping`: a graceful stop is under way.
    pub stopping: bool,
    /// `TotalBytesOut`: bytes sent to clients.
    pub total_bytes_out: u64,
    /// `CurrSslConns`: TLS connections open now.
    pub current_tls_connections: u64,
    /// `CumSslConns`: TLS handshakes completed.
    pub total_tls_connections: u64,
    /// `Ulimit-n`: the open-files limit.
    pub open_files_limit: u64,
    /// `Maxconn`: client connections served at once (`[global] maxconn`, or what the
    /// open-files limit allows).
    pub maxconn: u64,
    /// `Tasks`: tasks alive on the event loops (one per client connection, plus the control
    /// plane's).
    pub tasks: u64,
    /// `Run_queue`: tasks woken from another thread and not yet run.
    pub run_queue: u64,
}

impl ProcessInfo {
    /// Renders the answer, ending with the runtime API's empty line.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in self.lines() {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key}: {value}");
        }
        out.push('\n');
        out
    }

    /// `show info typed`.
    #[must_use]
    pub fn render_typed(&self) -> String {
        super::typed::info_typed(&self.lines())
    }

    /// `show info json`.
    #[must_use]
    pub fn render_json(&self) -> String {
        super::typed::info_json(&self.lines())
    }

    /// The keys and values, in HAProxy's order.
    fn lines(&self) -> [(&'static str, String); 30] {
        let up = self.uptime.as_secs();
        [
            ("Name", "veza-lb".to_owned()),
            ("Version", self.version.clone()),
            ("Release_date", self.release_date.clone()),
            ("Nbthread", self.threads.to_string()),
            ("Nbproc", "1".to_owned()),
            ("Process_num", "1".to_owned()),
            ("Pid", self.pid.to_string()),
            (
                "Uptime",
                format!(
                    "{}d {}h{:02}m{:02}s",
                    up / 86_400,
                    up % 86_400 / 3600,
                    up % 3600 / 60,
                    up % 60
                ),
            ),
            ("Uptime_sec", up.to_string()),
            ("Ulimit-n", self.open_files_limit.to_string()),
            ("Maxconn", self.maxconn.to_string()),
            ("CurrConns", self.current_connections.to_string()),
            ("CumConns", self.total_connections.to_string()),
            ("CumReq", self.total_requests.to_string()),
            ("CurrSslConns", self.current_tls_connections.to_string()),
            ("CumSslConns", self.total_tls_connections.to_string()),
            ("Maxpipes", "0".to_owned()),
            ("PipesUsed", "0".to_owned()),
            ("PipesFree", "0".to_owned()),
            ("ConnRate", self.connection_rate.to_string()),
            ("MaxConnRate", self.max_connection_rate.to_string()),
            ("SessRate", self.connection_rate.to_string()),
            ("MaxSessRate", self.max_connection_rate.to_string()),
            ("Tasks", self.tasks.to_string()),
            ("Run_queue", self.run_queue.to_string()),
            ("Idle_pct", self.idle_pct.to_string()),
            ("node", self.node.clone()),
            ("Stopping", u8::from(self.stopping).to_string()),
            ("TotalBytesOut", self.total_bytes_out.to_string()),
            ("Start_time_sec", self.start_unix.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_haproxy_order_with_its_uptime_format() {
        let info = ProcessInfo {
            version: "0.1.0".to_owned(),
            release_date: "2026/01/02".to_owned(),
            threads: 2,
            pid: 4242,
            uptime: Duration::from_secs(90_061),
            start_unix: 1_795_710_121,
            current_connections: 3,
            total_connections: 38,
            total_requests: 7,
            connection_rate: 5,
            max_connection_rate: 9,
            idle_pct: 99,
            node: "vm".to_owned(),
            stopping: false,
            total_bytes_out: 4662,
            current_tls_connections: 2,
            total_tls_connections: 11,
            open_files_limit: 1024,
            maxconn: 480,
            tasks: 12,
            run_queue: 0,
        };
        let text = info.render();
        assert!(text.starts_with("Name: veza-lb\nVersion: 0.1.0\nRelease_date: 2026/01/02\n"));
        assert!(text.contains("\nPid: 4242\nUptime: 1d 1h01m01s\nUptime_sec: 90061\n"));
        assert!(text.contains(
            "\nCurrConns: 3\nCumConns: 38\nCumReq: 7\nCurrSslConns: 2\nCumSslConns: 11\n"
        ));
        assert!(text.contains("\nIdle_pct: 99\nnode: vm\nStopping: 0\n"));
        assert!(
            text.contains("\nUlimit-n: 1024\nMaxconn: 480\n"),
            "hatop needs Maxconn"
        );
        assert!(
            text.contains("\nTasks: 12\nRun_queue: 0\n"),
            "and Tasks, Run_queue"
        );
        assert!(
            text.contains("\nMaxpipes: 0\nPipesUsed: 0\n"),
            "and the pipes"
        );
        let typed = info.render_typed();
        assert_eq!(
            typed.lines().filter(|l| !l.is_empty()).count(),
            text.lines().filter(|l| !l.is_empty()).count(),
            "every key has its typed field:\n{typed}"
        );
        assert!(text.ends_with("Start_time_sec: 1795710121\n\n"));
        // HAProxy's order: every key we print appears in the same order in HAProxy 2.6's.
        let haproxy = [
            "Name",
            "Version",
            "Release_date",
            "Nbthread",
            "Nbproc",
            "Process_num",
            "Pid",
            "Uptime",
            "Uptime_sec",
            "Memmax_MB",
            "PoolAlloc_MB",
            "PoolUsed_MB",
            "PoolFailed",
            "Ulimit-n",
            "Maxsock",
            "Maxconn",
            "Hard_maxconn",
            "CurrConns",
            "CumConns",
            "CumReq",
            "MaxSslConns",
            "CurrSslConns",
            "CumSslConns",
            "Maxpipes",
            "PipesUsed",
            "PipesFree",
            "ConnRate",
            "ConnRateLimit",
            "MaxConnRate",
            "SessRate",
            "SessRateLimit",
            "MaxSessRate",
            "SslRate",
            "SslRateLimit",
            "MaxSslRate",
            "SslFrontendKeyRate",
            "SslFrontendMaxKeyRate",
            "SslFrontendSessionReuse_pct",
            "SslBackendKeyRate",
            "SslBackendMaxKeyRate",
            "SslCacheLookups",
            "SslCacheMisses",
            "CompressBpsIn",
            "CompressBpsOut",
            "CompressBpsRateLim",
            "Tasks",
            "Run_queue",
            "Idle_pct",
            "node",
            "Stopping",
            "Jobs",
            "Unstoppable Jobs",
            "Listeners",
            "ActivePeers",
            "ConnectedPeers",
            "DroppedLogs",
            "BusyPolling",
            "FailedResolutions",
            "TotalBytesOut",
            "TotalSplicdedBytesOut",
            "BytesOutRate",
            "DebugCommandsIssued",
            "CumRecvLogs",
            "Build info",
            "Memmax_bytes",
            "PoolAlloc_bytes",
            "PoolUsed_bytes",
            "Start_time_sec",
            "Tainted",
        ];
        let ours: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|k| !k.is_empty())
            .collect();
        let mut at = 0;
        for key in ours {
            let found = haproxy[at..].iter().position(|k| *k == key);
            at += found.unwrap_or_else(|| panic!("{key} out of HAProxy's order")) + 1;
        }
    }
}
