//! The processes under test: tollgate and the bare hop each run in a child process of the
//! harness (the harness binary started again with a hidden subcommand), so their CPU time
//! and memory can be read from `/proc` apart from the load generator and the stubs.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BenchError;

/// How long a child may take to print its `ready` line; generous for a child under valgrind.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// CPU time of a process, split by where it ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// Returns the time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// A running child process and the address it serves on.
pub struct Child {
    pub name: &'static str,
    pub addr: SocketAddr,
    process: std::process::Child,
    /// Dropping it closes the child's standard input, which makes the child shut down.
    stdin: Option<ChildStdin>,
}

impl Child {
    /// Starts the harness binary again with `args` and `env`, under `wrapper` (such as
    /// valgrind) when one is given, sends its standard error to `log`, and waits for its
    /// `ready <addr>` line.
    pub fn spawn(
        name: &'static str,
        wrapper: &[String],
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Child, BenchError> {
        let exe = std::env::current_exe()
            .map_err(|source| BenchError::io("finding the harness binary", source))?;
        let log_file = std::fs::File::create(log)
            .map_err(|source| BenchError::io("creating a child log", source))?;
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        for (key, _) in std::env::vars() {
            if key.starts_with("TOLLGATE_")
                || key.starts_with("BLNK_")
                || key == "OPENAI_API_KEY"
                || key == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = command
            .spawn()
            .map_err(|source| BenchError::io("starting a child process", source))?;
        let stdin = process.stdin.take();
        let Some(stdout) = process.stdout.take() else {
            return Err(BenchError::Child {
                name,
                detail: "no standard output".into(),
            });
        };
        let addr = wait_ready(name, stdout, log)?;
        Ok(Child {
            name,
            addr,
            process,
            stdin,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// User and system CPU time the process has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> CpuTime {
        let text =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The command name in parentheses may hold spaces, so fields are counted after it.
        let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let time = |ticks: u64| {
            Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / clock_ticks_per_second())
        };
        CpuTime {
            user: time(ticks(11)),
            system: time(ticks(12)),
        }
    }

    /// Resident memory of the process.
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Closes the child's standard input and waits for it to exit, killing it after 15 s.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        for _ in 0..150 {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Resident memory of process `pid` in bytes, from `/proc/<pid>/status`; 0 when unreadable.
pub fn rss_of(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn wait_ready(
    name: &'static str,
    stdout: std::process::ChildStdout,
    log: &Path,
) -> Result<SocketAddr, BenchError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        // Reads on, so a child that prints more does not block on a full pipe.
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = receiver.recv_timeout(READY_TIMEOUT).unwrap_or_default();
    let addr = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|addr| addr.parse().ok());
    addr.ok_or_else(|| {
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = log_text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        BenchError::Child {
            name,
            detail: format!(
                "it did not report ready; its log {} ends with:\n{}",
                log.display(),
                tail.join("\n")
            ),
        }
    })
}

/// Clock ticks per second of `/proc/<pid>/stat`, from `getconf CLK_TCK` (100 on Linux when
/// the command is missing).
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// Runs `on_close` on a helper thread once standard input reaches its end.
pub fn exit_when_stdin_closes(on_close: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(read) if read > 0) {}
        on_close();
    });
}

/// Serves tollgate as `tollgate serve` does, with the configuration from the environment,
/// and shuts it down gracefully when standard input closes. Prints `ready <addr>`.
pub async fn serve_tollgate() -> ExitCode {
    let config = match tollgate::config::load(None) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid tollgate configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    tollgate::telemetry::init(config.log.format, &config.log.filter);
    let listen = config.listen;
    let state = match tollgate::server::build_state(config) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: tollgate cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    // `serve` loads the tokenizer tables in the background at start. Loading them before
    // "ready" keeps their tens of MiB out of every measurement, the memory one included.
    if tokio::task::spawn_blocking(tollgate::usage::preload_tokenizers)
        .await
        .is_err()
    {
        eprintln!("error: loading the tokenizer tables failed");
        return ExitCode::FAILURE;
    }
    let listener = match tollgate::server::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("ready {addr}"),
        Err(error) => {
            eprintln!("error: tollgate has no local address: {error}");
            return ExitCode::FAILURE;
        }
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    exit_when_stdin_closes(move || stop.cancel());
    match tollgate::server::run(state, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: tollgate stopped with an error: {error}");
            ExitCode::FAILURE
        }
    }
}
