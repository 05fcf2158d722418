//! Instructions tollgate executes per request, counted by callgrind. Unlike wall-clock
//! times, instruction counts barely move when other processes load the machine, so they
//! show the effect of a code change on a busy machine.
//!
//! tollgate runs under `valgrind --tool=callgrind --instr-atstart=no`; each case turns
//! instrumentation on with `callgrind_control`, zeroes the counters, sends its requests, and
//! dumps the counts to `callgrind.out.<n>` in the profile directory for `callgrind_annotate`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::setup::{Arm, Request, Rig, Shape, template};

/// Requests per second sent to tollgate under callgrind, which runs it about 50 times slower.
const RATE: u32 = 25;

/// One measured case.
pub struct Case {
    pub label: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub instructions: u64,
    pub dump: PathBuf,
}

/// Runs each case once to warm up, then again with collection on.
pub async fn run(rig: &Rig, dir: &Path, requests: u32) -> Vec<Case> {
    let plain = Shape {
        latency: Duration::ZERO,
        stream: None,
    };
    let stream = |chunks| Shape {
        latency: Duration::ZERO,
        stream: Some((chunks, Duration::from_millis(1))),
    };
    let cases = [
        ("non-streaming, postpaid", Arm::POSTPAID, plain),
        ("non-streaming, prepaid", Arm::PREPAID, plain),
        ("stream of 10 chunks, postpaid", Arm::POSTPAID, stream(10)),
        ("stream of 50 chunks, postpaid", Arm::POSTPAID, stream(50)),
    ];
    let duration = Duration::from_millis(u64::from(requests) * 1000 / u64::from(RATE));
    let pid = rig.tollgate.pid().to_string();
    let mut results = Vec::new();
    for (label, arm, shape) in cases {
        let template = Arc::new(template(arm, &Request::chat(shape)));
        rig.phase(arm, &template, RATE, Duration::from_secs(2))
            .await;
        callgrind_control(&["--instr=on", &pid]);
        callgrind_control(&["--zero", &pid]);
        let round = rig.phase(arm, &template, RATE, duration).await;
        // Lets the background void of the last hold finish inside the window.
        tokio::time::sleep(Duration::from_millis(500)).await;
        callgrind_control(&["--dump", &pid]);
        callgrind_control(&["--instr=off", &pid]);
        let dump = newest_dump(dir).unwrap_or_default();
        results.push(Case {
            label,
            requests: round.ok,
            errors: round.errors,
            instructions: total_instructions(&dump),
            dump,
        });
    }
    results
}

/// Appends the table of instructions per request.
pub fn render(out: &mut String, cases: &[Case]) {
    let _ = writeln!(
        out,
        "## Instructions per request (callgrind)\n\ntollgate's own process, everything it runs for the requests of the case: proxy, ledger client, outbox, logging.\n"
    );
    let _ = writeln!(
        out,
        "| case | requests | errors | instructions per request | dump |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for case in cases {
        let per_request = case.instructions / case.requests.max(1);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            case.label,
            case.requests,
            case.errors,
            group_thousands(per_request),
            case.dump.display()
        );
    }
    if let (Some(short), Some(long)) = (
        cases.iter().find(|case| case.label.contains("10 chunks")),
        cases.iter().find(|case| case.label.contains("50 chunks")),
    ) {
        let per_stream = |case: &Case| i128::from(case.instructions / case.requests.max(1));
        let per_chunk = (per_stream(long) - per_stream(short)) / 40;
        let _ = writeln!(out, "\nPer extra chunk: {per_chunk} instructions.");
    }
    let _ = writeln!(out);
}

fn callgrind_control(args: &[&str]) {
    match Command::new("callgrind_control").args(args).output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => eprintln!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => eprintln!("callgrind_control cannot run: {error}; install valgrind"),
    }
}

/// Returns the most recently written `callgrind.out.*` file in `dir`.
fn newest_dump(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("callgrind.out.")
        })
        .max_by_key(|entry| entry.metadata().and_then(|meta| meta.modified()).ok())
        .map(|entry| entry.path())
}

/// Returns the instruction total of a dump, from its `totals:` (or `summary:`) line.
fn total_instructions(dump: &Path) -> u64 {
    let text = std::fs::read_to_string(dump).unwrap_or_default();
    text.lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
