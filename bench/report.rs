//! The report: machine facts, the latency tables, and the list of request errors. The other
//! scenarios' tables are in [`crate::tables`].

use std::fmt::Write as _;
use std::time::Duration;

use crate::ledger::Call;
use crate::scenarios::{BodyPoint, Memory, Settings, SweepPoint, sustainable};
use crate::setup::{Arm, ArmRounds, Round};
use crate::stats::{median, signed};

/// Everything one run measured; a scenario that did not run is `None`.
#[derive(Default)]
pub struct Results {
    pub latency: Option<Vec<ArmRounds>>,
    pub sweep: Option<Vec<SweepPoint>>,
    pub streams: Option<Vec<ArmRounds>>,
    pub memory: Option<Vec<Memory>>,
    pub bodies: Option<Vec<BodyPoint>>,
    pub profile: Option<Vec<crate::profile::Case>>,
}

/// The machine the run measured, and its load before and after.
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub memory: String,
    pub load_before: String,
    pub load_after: String,
    /// The load ran on CPU 0 and the processes under test on CPU 1.
    pub pinned: bool,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map_or("unknown", |rest| rest.trim_start_matches([' ', '\t', ':']))
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_string(),
                |kib| format!("{:.1} GiB", kib as f64 / 1_048_576.0),
            );
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            model,
            memory,
            load_before: load_average(),
            load_after: String::new(),
            pinned: false,
        }
    }
}

/// Returns the 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Microseconds with one decimal, from nanoseconds.
pub fn us(nanos: i64) -> String {
    format!("{:.1} µs", nanos as f64 / 1000.0)
}

pub fn ms(nanos: i64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

/// Returns the median over rounds of one statistic.
pub fn median_of(rounds: &[Round], stat: impl Fn(&Round) -> u64) -> i64 {
    median(
        &rounds
            .iter()
            .map(|round| signed(stat(round)))
            .collect::<Vec<_>>(),
    )
}

/// Returns the median over rounds of `arm`'s statistic minus `base`'s in the same round.
pub fn added(arm: &ArmRounds, base: &ArmRounds, stat: impl Fn(&Round) -> u64) -> i64 {
    let differences: Vec<i64> = arm
        .rounds
        .iter()
        .zip(&base.rounds)
        .map(|(measured, reference)| signed(stat(measured)) - signed(stat(reference)))
        .collect();
    median(&differences)
}

/// Returns the CPU time (user plus system) of the process under test per completed
/// request, in nanoseconds.
pub fn cpu_per_request(arm: &ArmRounds) -> i64 {
    per_request(arm, |round| round.cpu.total())
}

/// Returns the system (kernel) part of [`cpu_per_request`].
fn system_cpu_per_request(arm: &ArmRounds) -> i64 {
    per_request(arm, |round| round.cpu.system)
}

fn per_request(arm: &ArmRounds, time: impl Fn(&Round) -> Duration) -> i64 {
    let total: u128 = arm.rounds.iter().map(|round| time(round).as_nanos()).sum();
    let ok: u64 = arm.rounds.iter().map(|round| round.ok).sum();
    let per = total.checked_div(u128::from(ok)).unwrap_or(0);
    i64::try_from(per).unwrap_or(i64::MAX)
}

pub fn find(arms: &[ArmRounds], arm: Arm) -> Option<&ArmRounds> {
    arms.iter().find(|result| result.arm == arm)
}

pub fn errors(arm: &ArmRounds) -> u64 {
    arm.rounds.iter().map(|round| round.errors).sum()
}

/// Writes the report to a string.
pub fn render(results: &Results, settings: &Settings, machine: &Machine, took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tollgate load harness{}\n",
        if settings.smoke { " (smoke run)" } else { "" }
    );
    let _ = writeln!(
        out,
        "machine: {} CPUs, {}, {} memory; load average {} before, {} after; {} build; run took {:.0} s{}\n",
        machine.cpus,
        machine.model,
        machine.memory,
        machine.load_before,
        machine.load_after,
        if cfg!(debug_assertions) {
            "dev (unoptimised)"
        } else {
            "release"
        },
        took.as_secs_f64(),
        if machine.pinned {
            "; load generator and stubs on CPU 0, processes under test on CPU 1"
        } else {
            ""
        }
    );
    if let Some(arms) = &results.latency {
        latency_tables(&mut out, arms, settings);
    }
    if let Some(points) = &results.sweep {
        crate::tables::sweep_table(&mut out, points);
    }
    if let Some(arms) = &results.streams {
        crate::tables::stream_table(&mut out, arms, settings);
    }
    if let Some(memory) = &results.memory {
        crate::tables::memory_table(&mut out, memory);
    }
    if let Some(points) = &results.bodies {
        crate::tables::body_table(&mut out, points);
    }
    if let Some(cases) = &results.profile {
        crate::profile::render(&mut out, cases);
    }
    crate::goals::table(&mut out, results);
    out
}

fn latency_tables(out: &mut String, arms: &[ArmRounds], settings: &Settings) {
    let Some(direct) = find(arms, Arm::Direct) else {
        return;
    };
    let hop_added = find(arms, Arm::Hop).map_or(0, |hop| added(hop, direct, |r| r.latency.p50));
    let _ = writeln!(
        out,
        "## Non-streaming latency at {} requests/s\n\n{} rounds of {:.1} s per arm, interleaved; medians of round percentiles; \
         upstream latency {} µs. A floor arm is the bare hop plus the ledger calls tollgate waits for, with fixed bodies: \
         the charge after the upstream response is read in full, and for prepaid the hold before forwarding.\n",
        settings.rate,
        settings.rounds,
        settings.latency_per_round.as_secs_f64(),
        settings.upstream_latency.as_micros()
    );
    let _ = writeln!(
        out,
        "| arm | p50 | p99 | added p50 | added p99 | added p50 / hop's | CPU per request (system part) | requests | errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for arm in arms {
        let added_p50 = added(arm, direct, |r| r.latency.p50);
        let ratio = if arm.arm == Arm::Direct || hop_added <= 0 {
            "".to_string()
        } else {
            format!("{:.2}×", added_p50 as f64 / hop_added as f64)
        };
        let cpu = if arm.arm == Arm::Direct {
            String::new()
        } else {
            format!(
                "{} ({})",
                us(cpu_per_request(arm)),
                us(system_cpu_per_request(arm))
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            arm.arm.label(),
            us(median_of(&arm.rounds, |r| r.latency.p50)),
            us(median_of(&arm.rounds, |r| r.latency.p99)),
            us(added_p50),
            us(added(arm, direct, |r| r.latency.p99)),
            ratio,
            cpu,
            arm.rounds.iter().map(|r| r.ok).sum::<u64>(),
            errors(arm)
        );
    }
    let _ = writeln!(out);
    ledger_table(out, arms);
}

/// Compares each Blnk-like arm with its zero-latency arm: the difference should be the stub's
/// own time for the calls on the critical path, and nothing more. The floor's rows show how
/// close to zero this method gets for a process that does nothing else.
fn ledger_table(out: &mut String, arms: &[ArmRounds]) {
    let _ = writeln!(
        out,
        "### Ledger calls on the critical path\n\n\"critical ledger time\" is the stub's measured time per call (its sleep included) \
         for the hold and the charge (prepaid) or the charge alone (postpaid). \"residual\" is what the Blnk-like ledger added \
         beyond that.\n"
    );
    let _ = writeln!(
        out,
        "| billing | added p50, ledger 0 ms | added p50, Blnk-like | difference | critical ledger time | residual | ledger calls per request (hold / charge / void) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    let Some(direct) = find(arms, Arm::Direct) else {
        return;
    };
    for (name, zero_arm, slow_arm) in blnk_like_pairs() {
        let (Some(zero), Some(slow)) = (find(arms, zero_arm), find(arms, slow_arm)) else {
            continue;
        };
        let zero_added = added(zero, direct, |r| r.latency.p50);
        let slow_added = added(slow, direct, |r| r.latency.p50);
        let critical = critical_ledger_ns(slow, slow_arm.prepaid());
        let difference = slow_added - zero_added;
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            us(zero_added),
            us(slow_added),
            us(difference),
            us(critical),
            us(difference - critical),
            calls_per_request(slow)
        );
    }
    let _ = writeln!(out);
    body_sizes(out, arms);
}

/// Returns each billing's arms at zero and at Blnk-like ledger latency, named for the ledger
/// table.
fn blnk_like_pairs() -> Vec<(&'static str, Arm, Arm)> {
    let mut pairs = Vec::new();
    for prepaid in [false, true] {
        let toll = |blnk_like| Arm::Tollgate { prepaid, blnk_like };
        let floor = |blnk_like| Arm::Floor { prepaid, blnk_like };
        let (toll_name, floor_name) = if prepaid {
            ("prepaid", "prepaid floor")
        } else {
            ("postpaid", "postpaid floor")
        };
        pairs.push((toll_name, toll(false), toll(true)));
        pairs.push((floor_name, floor(false), floor(true)));
    }
    pairs
}

/// Writes the mean request body sizes of the hold and the charge that tollgate and the floor
/// sent, so a reader can check that the floor posts bodies of tollgate's size.
fn body_sizes(out: &mut String, arms: &[ArmRounds]) {
    let mean = |arm: Arm, call: Call| {
        find(arms, arm).map_or_else(
            || "—".to_string(),
            |result| format!("{} B", total_counters(result).mean_body_bytes(call)),
        )
    };
    let _ = writeln!(
        out,
        "Mean request body, floor / tollgate, ledger 0 ms: charge {} / {} (postpaid), {} / {} (prepaid); hold {} / {} (prepaid).\n",
        mean(Arm::POSTPAID_FLOOR, Call::Bulk),
        mean(Arm::POSTPAID, Call::Bulk),
        mean(Arm::PREPAID_FLOOR, Call::Bulk),
        mean(Arm::PREPAID, Call::Bulk),
        mean(Arm::PREPAID_FLOOR, Call::Hold),
        mean(Arm::PREPAID, Call::Hold),
    );
}

/// Returns the ledger counters of all of `arm`'s rounds together.
fn total_counters(arm: &ArmRounds) -> crate::ledger::Counters {
    let mut total = crate::ledger::Counters::default();
    for round in &arm.rounds {
        total.add(&round.ledger);
    }
    total
}

/// Returns the stub's mean time for the ledger calls a request waits for.
pub fn critical_ledger_ns(arm: &ArmRounds, prepaid: bool) -> i64 {
    let total = total_counters(arm);
    let hold = if prepaid {
        total.mean_ns(Call::Hold)
    } else {
        0
    };
    signed(hold + total.mean_ns(Call::Bulk))
}

fn calls_per_request(arm: &ArmRounds) -> String {
    let total = total_counters(arm);
    let ok: u64 = arm.rounds.iter().map(|round| round.ok).sum::<u64>().max(1);
    let per = |call| total.calls_of(call) as f64 / ok as f64;
    format!(
        "{:.2} / {:.2} / {:.2}",
        per(Call::Hold),
        per(Call::Bulk),
        per(Call::Void)
    )
}

/// Lists each arm or phase that had request errors, with its first error.
pub fn problems(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    let mut check = |scenario: &str, arms: &[ArmRounds]| {
        for arm in arms {
            let count = errors(arm);
            if count > 0 {
                let first = arm
                    .rounds
                    .iter()
                    .find_map(|round| round.first_error.clone())
                    .unwrap_or_default();
                lines.push(format!(
                    "{scenario}, {}: {count} errors, the first: {first}",
                    arm.arm.label()
                ));
            }
        }
    };
    if let Some(arms) = &results.latency {
        check("latency", arms);
    }
    for point in results.sweep.iter().flatten() {
        // Errors above the sustainable rate are the sweep's finding, not a failure.
        let sustained: Vec<ArmRounds> = point
            .arms
            .iter()
            .filter(|arm| point.rate <= 500 || sustainable(&arm.rounds))
            .cloned()
            .collect();
        check(&format!("sweep at {} requests/s", point.rate), &sustained);
    }
    if let Some(arms) = &results.streams {
        check("streams", arms);
    }
    for point in results.bodies.iter().flatten() {
        check(&format!("body of {} KiB", point.size / 1024), &point.arms);
    }
    for entry in results.memory.iter().flatten() {
        if entry.errors > 0 {
            lines.push(format!(
                "memory, {}: {} errors, the first: {}",
                entry.name,
                entry.errors,
                entry.first_error.clone().unwrap_or_default()
            ));
        }
    }
    lines
}
