//! Runs the real `tollgate` binary as a child process against servers of the test: the fake
//! Blnk and an upstream on 127.0.0.1. The child gets a cleared environment, so no OPENAI_*
//! or TOLLGATE_* variable of the machine leaks in, and its own data directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a child is started with.
#[derive(Clone)]
pub struct Launch {
    pub blnk_url: String,
    pub upstream_url: String,
    pub data_dir: PathBuf,
    /// Extra variables, applied after the defaults.
    pub env: Vec<(String, String)>,
    /// Close the read end of the child's stderr at once, as a log collector that died would.
    pub close_stderr: bool,
}

/// A running `tollgate serve` process.
pub struct Tollgate {
    child: Child,
    /// Base URL of the proxy listener, without `/v1`.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Launch {
    pub fn new(blnk_url: String, upstream_url: String, data_dir: &Path) -> Launch {
        Launch {
            blnk_url,
            upstream_url,
            data_dir: data_dir.to_path_buf(),
            env: Vec::new(),
            close_stderr: false,
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

impl Tollgate {
    /// Starts `tollgate serve` and waits until its proxy listener responds to HTTP.
    pub async fn start(launch: &Launch) -> Tollgate {
        let port = free_port();
        let pricing = Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .arg("serve")
            .env_clear()
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")
            .env("TOLLGATE_UPSTREAM_URL", &launch.upstream_url)
            .env("OPENAI_API_KEY", "sk-operator-test")
            .env("BLNK_URL", &launch.blnk_url)
            .env("TOLLGATE_DATA_DIR", &launch.data_dir)
            .env("TOLLGATE_PRICING", pricing)
            .env("TOLLGATE_PRICING_WATCH", "false")
            .env("TOLLGATE_LOG_FILTER", "info")
            .env("TOLLGATE_BLNK_REQUEST_TIMEOUT", "500ms")
            .env("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms")
            .env("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "100ms")
            .env("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "1s")
            .env("TOLLGATE_SHUTDOWN_GRACE", "10s")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the tollgate binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take(), Arc::clone(&logs));
        if launch.close_stderr {
            drop(child.stderr.take());
        } else {
            collect_lines(child.stderr.take(), Arc::clone(&logs));
        }

        let tollgate = Tollgate {
            child,
            url: format!("http://127.0.0.1:{port}"),
            logs,
        };
        tollgate.wait_until_serving().await;
        tollgate
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Kills the process with SIGKILL, as a crash or `kill -9` would, and reaps it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("child reaped")
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tollgate did not exit within {limit:?}; its log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    async fn wait_until_serving(&self) {
        let client = reqwest::Client::new();
        for _ in 0..500 {
            // Any response from the router, even a 404, means requests are being served.
            if client
                .get(format!("{}/healthcheck-probe", self.url))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "tollgate did not start serving within 10 s; its log:\n{}",
            self.logs()
        );
    }
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Operator actions against the fake Blnk at `blnk_url`, with the default names the child uses.
pub fn operations(blnk_url: &str) -> tollgate::customers::Operations {
    tollgate::customers::Operations {
        blnk: tollgate::ledger::BlnkClient::new(blnk_url, None, Duration::from_secs(5))
            .expect("client"),
        ledger_name: "tollgate customer wallets".to_string(),
        system: tollgate::billing::SystemBalances {
            revenue: "@Revenue-USD".to_string(),
            token_pool: "@TokenPool".to_string(),
            world: "@World-USD".to_string(),
        },
    }
}

/// Creates a customer, and tops its wallet up with `funds` US dollars when given.
pub async fn create_customer(
    blnk_url: &str,
    id: &str,
    billing: tollgate::accounts::Billing,
    funds: Option<&str>,
) -> tollgate::customers::Created {
    let ops = operations(blnk_url);
    let customer = tollgate::ids::CustomerId::parse(id).expect("valid id");
    let created = ops
        .create_customer(&customer, None, billing)
        .await
        .expect("customer created");
    if let Some(funds) = funds {
        let amount = tollgate::money::Usd::parse_positive(funds).expect("amount");
        let reference = format!("tg:topup:{id}:initial");
        ops.fund(&customer, amount, &reference, "topup")
            .await
            .expect("topped up");
    }
    created
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn collect_lines(
    stream: Option<impl std::io::Read + Send + 'static>,
    logs: Arc<Mutex<Vec<String>>>,
) {
    let Some(stream) = stream else {
        return;
    };
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else {
                return;
            };
            logs.lock().expect("log lock").push(line);
        }
    });
}
