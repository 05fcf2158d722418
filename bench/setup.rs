//! The bench rig: the stubs in this process, the hop and tollgate in child processes, the
//! arms that route load through them, and the comparison of arms in interleaved rounds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};

pub use crate::arms::Arm;

use crate::BenchError;
use crate::ledger::{Counters, LedgerStub};
use crate::load::{self, Client, Outcome, Plan, Template};
use crate::procs::{Child, CpuTime};
use crate::stats::{Percentiles, percentiles};
use crate::upstream::{self, CHUNKS_HEADER, INTERVAL_HEADER, LATENCY_HEADER};

/// Requests open at once before the generator reports overload. tollgate accepts 4096
/// connections by default.
pub const MAX_IN_FLIGHT: usize = 4000;

pub const PREPAID_CUSTOMER: &str = "bench-prepaid";
pub const POSTPAID_CUSTOMER: &str = "bench-postpaid";

/// The model of every bench request.
pub const BENCH_MODEL: &str = "gpt-4o-mini";

/// The shape of the upstream's response in one phase.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub latency: Duration,
    /// `Some` for a stream: content chunks and the delay between them.
    pub stream: Option<(u32, Duration)>,
}

/// The running rig.
pub struct Rig {
    pub client: Client,
    pub upstream: SocketAddr,
    pub ledger: LedgerStub,
    pub hop: Child,
    /// The hop in its floor mode, calling the ledger stub's floor port.
    pub floor: Child,
    pub tollgate: Child,
    pub dir: tempfile::TempDir,
}

/// One arm's measurements in one round.
#[derive(Clone, Debug, Default)]
pub struct Round {
    pub latency: Percentiles,
    pub ttfb: Percentiles,
    pub transit: Percentiles,
    /// Streams: the scheduled send to the mock upstream's receipt of the request.
    pub request_leg: Percentiles,
    /// Streams: the mock's receipt of the request to its send of the first chunk.
    pub turnaround: Percentiles,
    /// Streams: the first chunk's transit from the mock to the client.
    pub first_chunk: Percentiles,
    pub ok: u64,
    pub scheduled: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub achieved_rate: f64,
    /// CPU time of the process under test (tollgate, the hop or the floor) during the round.
    pub cpu: CpuTime,
    /// Ledger calls of the arm's [`Arm::ledger_caller`] during the round.
    pub ledger: Counters,
}

/// One arm's rounds of a comparison.
#[derive(Clone, Debug)]
pub struct ArmRounds {
    pub arm: Arm,
    pub rounds: Vec<Round>,
}

impl Rig {
    /// Starts the stubs, the hop and tollgate; tollgate under callgrind when `profile_dir`
    /// is given, with instrumentation off until the profile scenario turns it on.
    pub async fn start(profile_dir: Option<&Path>, pin: bool) -> Result<Rig, BenchError> {
        let dir = tempfile::tempdir()
            .map_err(|source| BenchError::io("creating a temporary directory", source))?;
        let upstream = upstream::start()
            .await
            .map_err(|source| BenchError::io("starting the mock upstream", source))?;
        let ledger = LedgerStub::start()
            .await
            .map_err(|source| BenchError::io("starting the ledger stub", source))?;

        let pin_prefix: Vec<String> = if pin {
            ["taskset", "-c", TEST_CPU].map(String::from).to_vec()
        } else {
            Vec::new()
        };
        let hop = spawn_hop("hop", upstream, None, dir.path(), &pin_prefix).await?;
        let floor = spawn_hop(
            "floor",
            upstream,
            Some(ledger.floor_addr),
            dir.path(),
            &pin_prefix,
        )
        .await?;

        let pricing = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
        let env = vec![
            ("TOLLGATE_LISTEN", "127.0.0.1:0".to_string()),
            ("TOLLGATE_UPSTREAM_URL", format!("http://{upstream}")),
            ("OPENAI_API_KEY", "sk-bench-operator".to_string()),
            ("BLNK_URL", format!("http://{}", ledger.addr)),
            (
                "TOLLGATE_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("TOLLGATE_PRICING", pricing.display().to_string()),
            ("TOLLGATE_PRICING_WATCH", "false".to_string()),
        ];
        let tollgate_log = dir.path().join("tollgate.log");
        let mut wrapper = pin_prefix;
        wrapper.extend(match profile_dir {
            Some(profile_dir) => vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--instr-atstart=no".into(),
                format!(
                    "--callgrind-out-file={}",
                    profile_dir.join("callgrind.out").display()
                ),
            ],
            None => Vec::new(),
        });
        let tollgate = tokio::task::spawn_blocking(move || {
            Child::spawn(
                "tollgate",
                &wrapper,
                &["serve-tollgate"],
                &env,
                &tollgate_log,
            )
        })
        .await
        .map_err(|error| BenchError::Child {
            name: "tollgate",
            detail: error.to_string(),
        })??;

        Ok(Rig {
            client: Client::new(),
            upstream,
            ledger,
            hop,
            floor,
            tollgate,
            dir,
        })
    }

    /// Stops the child processes.
    pub fn stop(self) {
        self.hop.stop();
        self.floor.stop();
        self.tollgate.stop();
    }

    pub fn base(&self, arm: Arm) -> String {
        let addr = match arm {
            Arm::Direct => self.upstream,
            Arm::Hop => self.hop.addr,
            Arm::Floor { .. } => self.floor.addr,
            Arm::Tollgate { .. } => self.tollgate.addr,
        };
        format!("http://{addr}")
    }

    fn process_cpu(&self, arm: Arm) -> CpuTime {
        match arm {
            Arm::Direct => CpuTime::default(),
            Arm::Hop => self.hop.cpu_time(),
            Arm::Floor { .. } => self.floor.cpu_time(),
            Arm::Tollgate { .. } => self.tollgate.cpu_time(),
        }
    }

    /// Runs one phase of `arm` and summarises it.
    pub async fn phase(
        &self,
        arm: Arm,
        template: &Arc<Template>,
        rate: u32,
        duration: Duration,
    ) -> Round {
        self.ledger.set_blnk_like(arm.blnk_like());
        let plan = Plan {
            base: self.base(arm),
            template: Arc::clone(template),
            rate,
            duration,
            max_in_flight: MAX_IN_FLIGHT,
        };
        let cpu_before = self.process_cpu(arm);
        let ledger_before = self.ledger.counters(arm.ledger_caller());
        let outcome = load::run(&self.client, &plan).await;
        let cpu = self.process_cpu(arm).since(cpu_before);
        let ledger = self
            .ledger
            .counters(arm.ledger_caller())
            .since(&ledger_before);
        summarise(outcome, cpu, ledger)
    }

    /// Runs every arm `rounds` times, interleaved, after one warm-up phase per arm. The arm
    /// order rotates each round so that no arm always runs first.
    pub async fn compare(
        &self,
        arms: &[Arm],
        request: &Request,
        rate: u32,
        per_round: Duration,
        rounds: usize,
    ) -> Vec<ArmRounds> {
        let templates: Vec<Arc<Template>> = arms
            .iter()
            .map(|&arm| Arc::new(template(arm, request)))
            .collect();
        let warm_up = per_round
            .min(Duration::from_millis(500))
            .max(Duration::from_millis(100));
        for (index, &arm) in arms.iter().enumerate() {
            self.phase(arm, &templates[index], rate.min(1000), warm_up)
                .await;
        }
        let mut results: Vec<ArmRounds> = arms
            .iter()
            .map(|&arm| ArmRounds {
                arm,
                rounds: Vec::new(),
            })
            .collect();
        for round in 0..rounds {
            for offset in 0..arms.len() {
                let index = (round + offset) % arms.len();
                let measured = self
                    .phase(arms[index], &templates[index], rate, per_round)
                    .await;
                results[index].rounds.push(measured);
            }
        }
        results
    }
}

/// Starts the harness binary again as the bare hop in front of `upstream`, or as the floor
/// when `ledger` is given, logging to `<name>.log` in `dir`.
/// The CPU that `--pin` gives the processes under test.
const TEST_CPU: &str = "1";

/// The CPU that `--pin` gives the load generator and the stubs.
const LOAD_CPU: &str = "0";

/// Pins every thread of this process, the load generator and the stubs, to [`LOAD_CPU`].
/// Threads started later inherit the setting.
pub fn pin_self_to_load_cpu() -> Result<(), String> {
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", LOAD_CPU, &pid])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|error| {
            format!("--pin needs taskset (util-linux), which failed to start: {error}")
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset could not pin the harness to CPU {LOAD_CPU} ({status}); --pin needs at least two CPUs"
        ))
    }
}

async fn spawn_hop(
    name: &'static str,
    upstream: SocketAddr,
    ledger: Option<SocketAddr>,
    dir: &Path,
    wrapper: &[String],
) -> Result<Child, BenchError> {
    let wrapper = wrapper.to_vec();
    let log = dir.join(format!("{name}.log"));
    let mut args = vec![
        "serve-hop".to_string(),
        "--upstream".into(),
        upstream.to_string(),
    ];
    if let Some(ledger) = ledger {
        args.extend(["--ledger".to_string(), ledger.to_string()]);
    }
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Child::spawn(name, &wrapper, &args, &[], &log)
    })
    .await
    .map_err(|error| BenchError::Child {
        name,
        detail: error.to_string(),
    })?
}

/// The request a phase sends: the body and the shape of the upstream's response.
#[derive(Clone, Debug)]
pub struct Request {
    pub body: Bytes,
    pub shape: Shape,
}

impl Request {
    /// Builds a short chat request, as most SDK calls are.
    pub fn chat(shape: Shape) -> Request {
        let stream = if shape.stream.is_some() {
            r#","stream":true"#
        } else {
            ""
        };
        let body = format!(
            r#"{{"model":"{BENCH_MODEL}","max_tokens":64{stream},"messages":[{{"role":"system","content":"You are a concise assistant."}},{{"role":"user","content":"Explain double-entry bookkeeping in one sentence."}}]}}"#
        );
        Request {
            body: Bytes::from(body),
            shape,
        }
    }

    /// Builds a chat request whose user message pads the body to `size` bytes with plain text.
    pub fn chat_of_size(size: usize, shape: Shape) -> Request {
        let head =
            r#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":""#;
        let tail = r#""}]}"#;
        let filler_len = size.saturating_sub(head.len() + tail.len());
        let words = "the ledger records every debit with a matching credit ";
        let filler: String = words.chars().cycle().take(filler_len).collect();
        Request {
            body: Bytes::from(format!("{head}{filler}{tail}")),
            shape,
        }
    }
}

/// Builds the request template of `arm`. The customer header picks the billing, and only tollgate
/// arms expect a recorded charge.
pub fn template(arm: Arm, request: &Request) -> Template {
    let customer = if arm.prepaid() {
        PREPAID_CUSTOMER
    } else {
        POSTPAID_CUSTOMER
    };
    let mut headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-bench-client"),
        ),
        (
            HeaderName::from_static("x-customer-id"),
            HeaderValue::from_static(customer),
        ),
        (
            HeaderName::from_static(LATENCY_HEADER),
            number(request.shape.latency.as_micros()),
        ),
    ];
    if let Some((chunks, interval)) = request.shape.stream {
        headers.push((
            HeaderName::from_static(CHUNKS_HEADER),
            number(u128::from(chunks)),
        ));
        headers.push((
            HeaderName::from_static(INTERVAL_HEADER),
            number(interval.as_micros()),
        ));
    }
    Template {
        path: "/v1/chat/completions",
        headers,
        body: request.body.clone(),
        expect_charge: matches!(arm, Arm::Tollgate { .. }),
        stream: request.shape.stream.is_some(),
    }
}

fn number(value: u128) -> HeaderValue {
    HeaderValue::from(u64::try_from(value).unwrap_or(u64::MAX))
}

fn summarise(mut outcome: Outcome, cpu: CpuTime, ledger: Counters) -> Round {
    Round {
        latency: percentiles(&mut outcome.latency_ns),
        ttfb: percentiles(&mut outcome.ttfb_ns),
        transit: percentiles(&mut outcome.transit_ns),
        request_leg: percentiles(&mut outcome.request_leg_ns),
        turnaround: percentiles(&mut outcome.turnaround_ns),
        first_chunk: percentiles(&mut outcome.first_chunk_ns),
        ok: outcome.ok,
        scheduled: outcome.scheduled,
        errors: outcome.errors,
        achieved_rate: outcome.achieved_rate(),
        first_error: outcome.first_error,
        cpu,
        ledger,
    }
}
