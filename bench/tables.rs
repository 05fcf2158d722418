//! Markdown tables of the sweep, stream, memory and body-size scenarios.

use std::fmt::Write as _;

use crate::report::{added, cpu_per_request, errors, find, median_of, us};
use crate::scenarios::{BodyPoint, Memory, SUSTAINABLE_P99, Settings, SweepPoint, sustainable};
use crate::setup::{Arm, ArmRounds};

pub fn sweep_table(out: &mut String, points: &[SweepPoint]) {
    let arms = [Arm::Direct, Arm::Hop, Arm::POSTPAID, Arm::PREPAID];
    let _ = writeln!(
        out,
        "## Rate sweep to saturation\n\nEach cell: p50 / p99 of the median round. ✗ marks a rate the arm did not sustain \
         (an error, or p99 above {} ms); a failed arm is not run at higher rates. tollgate's CPU time per request in brackets.\n",
        SUSTAINABLE_P99.as_millis()
    );
    let header: Vec<&str> = arms.iter().map(|arm| arm.label()).collect();
    let _ = writeln!(out, "| requests/s | {} |", header.join(" | "));
    let _ = writeln!(out, "|---:|{}", "---|".repeat(arms.len()));
    for point in points {
        let cells: Vec<String> = arms
            .iter()
            .map(|&arm| match find(&point.arms, arm) {
                None => "—".to_string(),
                Some(result) => {
                    let mark = if sustainable(&result.rounds) {
                        String::new()
                    } else {
                        let achieved = median_of(&result.rounds, |r| r.achieved_rate as u64);
                        format!(" ✗ ({achieved} completed/s)")
                    };
                    let cpu = match arm {
                        Arm::Tollgate { .. } => format!(" [{}]", us(cpu_per_request(result))),
                        _ => String::new(),
                    };
                    format!(
                        "{} / {}{cpu}{mark}",
                        us(median_of(&result.rounds, |r| r.latency.p50)),
                        us(median_of(&result.rounds, |r| r.latency.p99))
                    )
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", point.rate, cells.join(" | "));
    }
    let _ = writeln!(out);
    for arm in arms {
        let _ = writeln!(
            out,
            "- maximum sustained rate, {}: {}",
            arm.label(),
            max_sustained(points, arm)
        );
    }
    let _ = writeln!(out);
}

/// Returns the highest swept rate `arm` sustained, as text ("at least" when it never failed).
pub fn max_sustained(points: &[SweepPoint], arm: Arm) -> String {
    let mut best = None;
    let mut failed = false;
    for point in points {
        match find(&point.arms, arm) {
            Some(result) if sustainable(&result.rounds) => best = Some(point.rate),
            Some(_) => failed = true,
            None => {}
        }
    }
    match (best, failed) {
        (Some(rate), true) => format!("{rate} requests/s"),
        (Some(rate), false) => format!("at least {rate} requests/s (the highest rate swept)"),
        (None, _) => "below the lowest rate swept".to_string(),
    }
}

pub fn stream_table(out: &mut String, arms: &[ArmRounds], settings: &Settings) {
    let Some(direct) = find(arms, Arm::Direct) else {
        return;
    };
    let _ = writeln!(
        out,
        "## Streams\n\n{} streams/s, {} content chunks {} µs apart. TTFB runs from the scheduled send to the first body byte; \
         transit from the upstream's send time of a chunk to its arrival at the client. Overheads are per-round differences \
         to direct. The prepaid floor places the hold and then streams the response through with no charge, so only its \
         TTFB is a floor for tollgate's.\n",
        settings.stream_rate,
        settings.stream_chunks,
        settings.stream_interval.as_micros()
    );
    let _ = writeln!(
        out,
        "| arm | TTFB p50 | TTFB p99 | TTFB overhead p50 | chunk transit p50 | p99 | per-chunk overhead p50 | p99 | to [DONE] p50 | streams | errors |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for arm in arms {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            arm.arm.label(),
            us(median_of(&arm.rounds, |r| r.ttfb.p50)),
            us(median_of(&arm.rounds, |r| r.ttfb.p99)),
            us(added(arm, direct, |r| r.ttfb.p50)),
            us(median_of(&arm.rounds, |r| r.transit.p50)),
            us(median_of(&arm.rounds, |r| r.transit.p99)),
            us(added(arm, direct, |r| r.transit.p50)),
            us(added(arm, direct, |r| r.transit.p99)),
            us(median_of(&arm.rounds, |r| r.latency.p50)),
            arm.rounds.iter().map(|r| r.ok).sum::<u64>(),
            errors(arm)
        );
    }
    let _ = writeln!(out);
    first_byte_legs(out, arms, direct);
}

/// Splits each arm's time to first byte at the mock upstream's timestamps into the request's
/// trip to upstream, the mock's own turnaround, and the first chunk's trip back to the client.
fn first_byte_legs(out: &mut String, arms: &[ArmRounds], direct: &ArmRounds) {
    let _ = writeln!(
        out,
        "### The way to the first byte

The request leg runs from the scheduled send to the mock upstream's receipt of the \
         request; the turnaround from that receipt to the mock's send of the first chunk; the first-chunk leg from that send \
         to the chunk's arrival at the client. Overheads are per-round differences to direct, at p50.\n"
    );
    let _ = writeln!(
        out,
        "| arm | request leg | overhead | turnaround | overhead | first-chunk leg | overhead |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for arm in arms {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            arm.arm.label(),
            us(median_of(&arm.rounds, |r| r.request_leg.p50)),
            us(added(arm, direct, |r| r.request_leg.p50)),
            us(median_of(&arm.rounds, |r| r.turnaround.p50)),
            us(added(arm, direct, |r| r.turnaround.p50)),
            us(median_of(&arm.rounds, |r| r.first_chunk.p50)),
            us(added(arm, direct, |r| r.first_chunk.p50)),
        );
    }
    let _ = writeln!(out);
}

pub fn memory_table(out: &mut String, memory: &[Memory]) {
    let _ = writeln!(
        out,
        "## Memory with open streams\n\nResident memory (VmRSS) of the process, sampled every 50 ms while the streams are open.\n"
    );
    let _ = writeln!(
        out,
        "| process | streams | completed | RSS before | RSS peak | per 1,000 open streams |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for entry in memory {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            entry.name,
            entry.streams,
            entry.ok,
            mib(entry.baseline_bytes),
            mib(entry.peak_bytes),
            mib(per_thousand_streams(entry))
        );
    }
    let _ = writeln!(out);
}

/// Memory growth per 1,000 open streams, in bytes.
pub fn per_thousand_streams(entry: &Memory) -> u64 {
    entry.peak_bytes.saturating_sub(entry.baseline_bytes) * 1000 / entry.streams.max(1)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

pub fn body_table(out: &mut String, points: &[BodyPoint]) {
    let _ = writeln!(
        out,
        "## Request body size\n\nNon-streaming; added p50 is the per-round difference to direct.\n"
    );
    let _ = writeln!(
        out,
        "| body | direct p50 | hop added p50 | tollgate added p50 | tollgate added p99 | tollgate minus hop |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for point in points {
        let Some(direct) = find(&point.arms, Arm::Direct) else {
            continue;
        };
        let hop =
            find(&point.arms, Arm::Hop).map_or(0, |hop| added(hop, direct, |r| r.latency.p50));
        let tollgate = find(&point.arms, Arm::POSTPAID);
        let toll_p50 = tollgate.map_or(0, |arm| added(arm, direct, |r| r.latency.p50));
        let toll_p99 = tollgate.map_or(0, |arm| added(arm, direct, |r| r.latency.p99));
        let _ = writeln!(
            out,
            "| {} KiB | {} | {} | {} | {} | {} |",
            point.size / 1024,
            us(median_of(&direct.rounds, |r| r.latency.p50)),
            us(hop),
            us(toll_p50),
            us(toll_p99),
            us(toll_p50 - hop)
        );
    }
    if let Some((toll, hop)) = body_slopes(points) {
        let _ = writeln!(
            out,
            "\nSlope from the smallest to the largest body: tollgate {:.3} µs per extra KiB, bare hop {:.3} µs per extra KiB.",
            toll, hop
        );
    }
    let _ = writeln!(out);
}

/// tollgate's and the hop's added p50 per extra KiB between the smallest and largest body.
pub fn body_slopes(points: &[BodyPoint]) -> Option<(f64, f64)> {
    let (first, last) = (points.first()?, points.last()?);
    if last.size <= first.size {
        return None;
    }
    let added_at = |point: &BodyPoint, arm: Arm| -> Option<i64> {
        let direct = find(&point.arms, Arm::Direct)?;
        Some(added(find(&point.arms, arm)?, direct, |r| r.latency.p50))
    };
    let kib = (last.size - first.size) as f64 / 1024.0;
    let toll =
        (added_at(last, Arm::POSTPAID)? - added_at(first, Arm::POSTPAID)?) as f64 / 1000.0 / kib;
    let hop = (added_at(last, Arm::Hop)? - added_at(first, Arm::Hop)?) as f64 / 1000.0 / kib;
    Some((toll, hop))
}
