//! The status of each performance goal in this run. Goals are reported, never asserted: the
//! numbers depend on the machine and its load.

use std::fmt::Write as _;

use crate::report::{Results, added, cpu_per_request, critical_ledger_ns, find, ms, us};
use crate::setup::{Arm, ArmRounds};
use crate::tables::{body_slopes, per_thousand_streams};

/// One goal: its wording, the measured figure, and whether the figure meets it.
struct Goal {
    name: &'static str,
    target: &'static str,
    measured: String,
    met: bool,
}

/// Appends the goals table; goals whose scenario did not run are left out.
pub fn table(out: &mut String, results: &Results) {
    let mut goals = Vec::new();
    if let Some(arms) = &results.latency {
        latency_goals(&mut goals, arms);
    }
    if let Some(arms) = &results.streams {
        stream_goals(&mut goals, arms);
    }
    if let Some(memory) = &results.memory
        && let Some(entry) = memory.iter().find(|entry| entry.name == "tollgate")
    {
        let per_thousand = per_thousand_streams(entry);
        goals.push(Goal {
            name: "memory per 1,000 open streams",
            target: "under 32 MiB",
            measured: format!("{:.1} MiB", per_thousand as f64 / 1_048_576.0),
            met: per_thousand < 32 << 20,
        });
    }
    if let Some(points) = &results.bodies
        && let Some((toll, _)) = body_slopes(points)
    {
        goals.push(Goal {
            name: "added latency per extra KiB of request body",
            target: "under 1 µs",
            measured: format!("{toll:.3} µs"),
            met: toll < 1.0,
        });
    }
    if goals.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Goals\n\nPostpaid customer, ledger stub at 0 ms, unless the goal says otherwise.\n"
    );
    let _ = writeln!(out, "| goal | target | measured | status |");
    let _ = writeln!(out, "|---|---|---:|---|");
    for goal in goals {
        let status = if goal.met { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            goal.name, goal.target, goal.measured, status
        );
    }
    let _ = writeln!(out);
}

fn latency_goals(goals: &mut Vec<Goal>, arms: &[ArmRounds]) {
    let (Some(direct), Some(hop), Some(toll)) = (
        find(arms, Arm::Direct),
        find(arms, Arm::Hop),
        find(arms, Arm::POSTPAID),
    ) else {
        return;
    };
    let toll_p50 = added(toll, direct, |r| r.latency.p50);
    let toll_p99 = added(toll, direct, |r| r.latency.p99);
    let hop_p50 = added(hop, direct, |r| r.latency.p50);
    let ratio = ratio_to(toll_p50, hop_p50);
    goals.push(Goal {
        name: "added p50 relative to the bare hop's",
        target: "within 1.25×",
        measured: format!("{ratio:.2}× ({} vs {})", us(toll_p50), us(hop_p50)),
        met: ratio <= 1.25,
    });
    // The bare hop makes no ledger call, but tollgate's design waits for the charge, so the
    // same bound is also reported against the floor, which makes exactly that call.
    if let Some(floor) = find(arms, Arm::POSTPAID_FLOOR) {
        let floor_p50 = added(floor, direct, |r| r.latency.p50);
        let ratio = ratio_to(toll_p50, floor_p50);
        goals.push(Goal {
            name: "added p50 relative to the postpaid floor's (bare hop plus the charge call)",
            target: "within 1.25×",
            measured: format!(
                "{ratio:.2}× ({} vs {}; bare hop {})",
                us(toll_p50),
                us(floor_p50),
                us(hop_p50)
            ),
            met: ratio <= 1.25,
        });
    }
    goals.push(Goal {
        name: "added p50",
        target: "under 100 µs",
        measured: us(toll_p50),
        met: toll_p50 < 100_000,
    });
    goals.push(Goal {
        name: "added p99",
        target: "under 1 ms",
        measured: us(toll_p99),
        met: toll_p99 < 1_000_000,
    });
    let cpu = cpu_per_request(toll);
    goals.push(Goal {
        name: "tollgate CPU time per non-streaming request",
        target: "under 100 µs",
        measured: us(cpu),
        met: cpu < 100_000,
    });
    for prepaid in [false, true] {
        let (Some(zero), Some(slow)) = (
            find(
                arms,
                Arm::Tollgate {
                    prepaid,
                    blnk_like: false,
                },
            ),
            find(
                arms,
                Arm::Tollgate {
                    prepaid,
                    blnk_like: true,
                },
            ),
        ) else {
            continue;
        };
        let residual = added(slow, direct, |r| r.latency.p50)
            - added(zero, direct, |r| r.latency.p50)
            - critical_ledger_ns(slow, prepaid);
        goals.push(Goal {
            name: if prepaid {
                "prepaid, Blnk-like ledger: added p50 beyond the hold and the charge"
            } else {
                "postpaid, Blnk-like ledger: added p50 beyond the charge"
            },
            target: "nothing measurable (under 1 ms; a void on the path would add about 6 ms)",
            measured: ms(residual),
            met: residual < 1_000_000,
        });
    }
}

/// Returns `added / base`, or infinity when the base is not positive.
fn ratio_to(added: i64, base: i64) -> f64 {
    if base > 0 {
        added as f64 / base as f64
    } else {
        f64::INFINITY
    }
}

fn stream_goals(goals: &mut Vec<Goal>, arms: &[ArmRounds]) {
    let (Some(direct), Some(toll)) = (find(arms, Arm::Direct), find(arms, Arm::POSTPAID)) else {
        return;
    };
    let ttfb = added(toll, direct, |r| r.ttfb.p50);
    goals.push(Goal {
        name: "stream TTFB overhead p50",
        target: "under 150 µs",
        measured: us(ttfb),
        met: ttfb < 150_000,
    });
    let chunk = added(toll, direct, |r| r.transit.p99);
    goals.push(Goal {
        name: "per-chunk overhead p99",
        target: "under 20 µs",
        measured: us(chunk),
        met: chunk < 20_000,
    });
}
