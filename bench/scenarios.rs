//! The measurements: non-streaming latency per arm, a rate sweep to saturation, streams,
//! memory with many open streams, and request bodies from 1 KiB to 1 MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::load::{self, Plan};
use crate::procs::Child;
use crate::setup::{Arm, ArmRounds, MAX_IN_FLIGHT, Request, Rig, Round, Shape};
use crate::stats::median;

/// A sweep point is sustainable when every request completed and the median round's p99
/// stayed under this bound. An overloaded open-loop run queues, so its p99 grows with time.
pub const SUSTAINABLE_P99: Duration = Duration::from_millis(10);

/// Sizes of the measurements, built by [`Settings::full`] and [`Settings::smoke`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub smoke: bool,
    pub upstream_latency: Duration,
    pub rate: u32,
    pub rounds: usize,
    pub latency_per_round: Duration,
    pub sweep_rates: Vec<u32>,
    pub sweep_rounds: usize,
    pub sweep_per_round: Duration,
    pub stream_rate: u32,
    pub stream_chunks: u32,
    pub stream_interval: Duration,
    pub stream_per_round: Duration,
    pub memory_streams: u32,
    pub memory_chunks: u32,
    pub memory_interval: Duration,
    pub body_sizes: Vec<usize>,
    pub body_rate: u32,
    pub body_rounds: usize,
    pub body_per_round: Duration,
}

/// One rate of the sweep.
pub struct SweepPoint {
    pub rate: u32,
    pub arms: Vec<ArmRounds>,
}

/// Memory of one process while it relays many open streams.
pub struct Memory {
    pub name: &'static str,
    pub streams: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub baseline_bytes: u64,
    pub peak_bytes: u64,
}

/// One request size of the body scenario.
pub struct BodyPoint {
    pub size: usize,
    pub arms: Vec<ArmRounds>,
}

impl Settings {
    /// Sizes the full run. `duration` is the measured time of each arm in the latency comparison.
    pub fn full(
        duration: Duration,
        rate: u32,
        rounds: usize,
        upstream_latency: Duration,
        streams: u32,
    ) -> Settings {
        let rounds = rounds.max(1);
        let scaled = |fraction: u32, floor_ms: u64| {
            (duration / fraction).max(Duration::from_millis(floor_ms))
        };
        Settings {
            smoke: false,
            upstream_latency,
            rate,
            rounds,
            latency_per_round: duration / u32::try_from(rounds).unwrap_or(1),
            sweep_rates: vec![500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 12000, 16000],
            sweep_rounds: 3,
            sweep_per_round: scaled(10, 500),
            stream_rate: 100,
            stream_chunks: 20,
            stream_interval: Duration::from_millis(2),
            stream_per_round: scaled(u32::try_from(rounds).unwrap_or(1), 500),
            memory_streams: streams,
            memory_chunks: 30,
            memory_interval: Duration::from_millis(200),
            body_sizes: vec![1 << 10, 16 << 10, 128 << 10, 1 << 20],
            body_rate: 200,
            body_rounds: 3,
            body_per_round: scaled(10, 1000),
        }
    }

    /// Sizes a short run of every code path: a few hundred requests per arm, one round.
    pub fn smoke() -> Settings {
        Settings {
            smoke: true,
            upstream_latency: Duration::ZERO,
            rate: 200,
            rounds: 1,
            latency_per_round: Duration::from_secs(1),
            sweep_rates: vec![100, 200],
            sweep_rounds: 1,
            sweep_per_round: Duration::from_millis(500),
            stream_rate: 50,
            stream_chunks: 5,
            stream_interval: Duration::from_millis(1),
            stream_per_round: Duration::from_millis(400),
            memory_streams: 100,
            memory_chunks: 10,
            memory_interval: Duration::from_millis(50),
            body_sizes: vec![1 << 10, 64 << 10],
            body_rate: 100,
            body_rounds: 1,
            body_per_round: Duration::from_millis(300),
        }
    }

    fn plain(&self) -> Shape {
        Shape {
            latency: self.upstream_latency,
            stream: None,
        }
    }
}

/// Non-streaming requests through every arm at the configured rate.
pub async fn latency(rig: &Rig, settings: &Settings) -> Vec<ArmRounds> {
    let request = Request::chat(settings.plain());
    rig.compare(
        &Arm::LATENCY_ARMS,
        &request,
        settings.rate,
        settings.latency_per_round,
        settings.rounds,
    )
    .await
}

/// Raises the rate step by step until neither tollgate arm sustains it. An arm that failed
/// a rate is not run at higher rates.
pub async fn sweep(rig: &Rig, settings: &Settings) -> Vec<SweepPoint> {
    let request = Request::chat(settings.plain());
    let mut active = vec![Arm::Direct, Arm::Hop, Arm::POSTPAID, Arm::PREPAID];
    let mut points = Vec::new();
    for &rate in &settings.sweep_rates {
        let arms = rig
            .compare(
                &active,
                &request,
                rate,
                settings.sweep_per_round,
                settings.sweep_rounds,
            )
            .await;
        active.retain(|arm| {
            arms.iter()
                .any(|result| result.arm == *arm && sustainable(&result.rounds))
        });
        points.push(SweepPoint { rate, arms });
        if !active.iter().any(|arm| matches!(arm, Arm::Tollgate { .. })) {
            break;
        }
    }
    points
}

/// Returns whether every round completed all its requests with the median round's p99 in bounds.
pub fn sustainable(rounds: &[Round]) -> bool {
    let complete = rounds
        .iter()
        .all(|round| round.errors == 0 && round.ok == round.scheduled);
    let p99s: Vec<i64> = rounds
        .iter()
        .map(|round| crate::stats::signed(round.latency.p99))
        .collect();
    complete && median(&p99s) <= crate::stats::signed(SUSTAINABLE_P99.as_nanos() as u64)
}

/// Streamed requests: time to the first chunk, and each chunk's transit from upstream. The
/// prepaid floor places its hold and then streams the response through without a charge, so
/// it bounds the prepaid arm's time to the first chunk.
pub async fn streams(rig: &Rig, settings: &Settings) -> Vec<ArmRounds> {
    let shape = Shape {
        latency: settings.upstream_latency,
        stream: Some((settings.stream_chunks, settings.stream_interval)),
    };
    let request = Request::chat(shape);
    let arms = [
        Arm::Direct,
        Arm::Hop,
        Arm::PREPAID_FLOOR,
        Arm::POSTPAID,
        Arm::PREPAID,
    ];
    rig.compare(
        &arms,
        &request,
        settings.stream_rate,
        settings.stream_per_round,
        settings.rounds,
    )
    .await
}

/// Opens `memory_streams` streams within one second, keeps them open, and records the
/// resident memory of tollgate and of the hop, each in its own phase.
pub async fn memory(rig: &Rig, settings: &Settings) -> Vec<Memory> {
    let mut results = Vec::new();
    for (arm, child) in [(Arm::Hop, &rig.hop), (Arm::POSTPAID, &rig.tollgate)] {
        results.push(open_streams(rig, settings, arm, child).await);
    }
    results
}

async fn open_streams(rig: &Rig, settings: &Settings, arm: Arm, child: &Child) -> Memory {
    let shape = Shape {
        latency: Duration::ZERO,
        stream: Some((settings.memory_chunks, settings.memory_interval)),
    };
    let template = Arc::new(crate::setup::template(arm, &Request::chat(shape)));
    rig.ledger.set_blnk_like(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline_bytes = child.rss_bytes();

    let peak = Arc::new(AtomicU64::new(baseline_bytes));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (Arc::clone(&peak), Arc::clone(&done), child.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(crate::procs::rss_of(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let plan = Plan {
        base: rig.base(arm),
        template,
        rate: settings.memory_streams,
        duration: Duration::from_secs(1),
        max_in_flight: MAX_IN_FLIGHT.max(settings.memory_streams as usize + 1),
    };
    let outcome = load::run(&rig.client, &plan).await;
    done.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    Memory {
        name: child.name,
        streams: outcome.scheduled,
        ok: outcome.ok,
        errors: outcome.errors,
        first_error: outcome.first_error,
        baseline_bytes,
        peak_bytes: peak.load(Ordering::SeqCst),
    }
}

/// Non-streaming requests of growing body size through direct, the hop and tollgate.
pub async fn bodies(rig: &Rig, settings: &Settings) -> Vec<BodyPoint> {
    let mut points = Vec::new();
    for &size in &settings.body_sizes {
        let request = Request::chat_of_size(size, settings.plain());
        let arms = rig
            .compare(
                &[Arm::Direct, Arm::Hop, Arm::POSTPAID],
                &request,
                settings.body_rate,
                settings.body_per_round,
                settings.body_rounds,
            )
            .await;
        points.push(BodyPoint { size, arms });
    }
    points
}
