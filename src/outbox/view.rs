//! The operator's view of the outbox: `tollgate outbox list` and `tollgate outbox retry`, and
//! the counts that `tollgate customer show` prints. Every command opens the outbox of the
//! configured data directory with [`Outbox::open_shared`], so it works while the server runs.
//! The server's worker picks up a retried entry within half a second.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::money::Nanos;

use super::{Counts, Entry, EntryKind, EntryState, Outbox, OutboxError};

/// Maximum characters of an error shown in a table cell. `--json` prints the whole text.
const MAX_CELL_CHARS: usize = 80;

/// `tollgate outbox ...`.
#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// List pending entries (charges and hold voids not yet confirmed by Blnk), oldest first.
    List {
        /// List the dead-letter list instead: entries the worker gave up on.
        #[arg(long)]
        dead: bool,
        /// Maximum number of entries to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Make a dead or pending entry pending and due now, with a new `outbox.max_age` window.
    #[command(group(ArgGroup::new("target").required(true).args(["id", "all_dead"])))]
    Retry {
        /// Id of the entry, as `tollgate outbox list` prints it.
        id: Option<i64>,
        /// Retry every entry on the dead-letter list.
        #[arg(long)]
        all_dead: bool,
    },
}

/// An error of an `outbox` command.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(
        "outbox entry {id} not found in {path}; list entries with `tollgate outbox list` or `tollgate outbox list --dead`"
    )]
    NotFound { id: i64, path: String },
    #[error("failed to print JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A customer's outbox entries as `customer show --json` prints them beside the account.
#[derive(Debug, Serialize)]
pub struct WithOutbox<'a, T: Serialize> {
    #[serde(flatten)]
    pub account: &'a T,
    /// `None` when the data directory contains no outbox, or it could not be read.
    pub outbox: Option<Counts>,
}

/// One row of `outbox list`.
#[derive(Debug, Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    customer_id: Option<&'a str>,
    /// The charge's USD amount, for a charge entry.
    amount_usd: Option<String>,
}

/// Runs an `outbox` command against the outbox in the configured data directory.
pub async fn run(config: &Config, command: OutboxCommand, json: bool) -> Result<(), ViewError> {
    let outbox = Outbox::open_shared(&config.data_dir)?;
    match command {
        OutboxCommand::List { dead, limit } => {
            let state = if dead {
                EntryState::Dead
            } else {
                EntryState::Pending
            };
            let entries = outbox.list(state, limit).await?;
            let counts = outbox.counts().await?;
            print_list(&entries, &counts, state, json, Utc::now())
        }
        OutboxCommand::Retry { id: Some(id), .. } => retry_one(&outbox, id, json).await,
        OutboxCommand::Retry { id: None, .. } => {
            let revived = outbox.retry_all_dead().await?;
            if json {
                println!("{}", serde_json::json!({ "retried": revived }));
            } else {
                let entries = if revived == 1 {
                    "entry is"
                } else {
                    "entries are"
                };
                println!("{revived} dead outbox {entries} pending again and due now");
                println!(
                    "a running server posts them within a second; check with `tollgate outbox list`"
                );
            }
            Ok(())
        }
    }
}

/// Reads the counts of `customer`'s pending and dead entries, for `customer show`. Returns
/// `None`, after a warning on stderr, when the data directory has no outbox or it fails.
pub async fn customer_counts(config: &Config, customer: &str) -> Option<Counts> {
    let counts = match Outbox::open_shared(&config.data_dir) {
        Ok(outbox) => outbox.counts_for_customer(customer).await,
        Err(error) => Err(error),
    };
    match counts {
        Ok(counts) => Some(counts),
        Err(error) => {
            eprintln!("warning: the outbox counts are not shown: {error}");
            None
        }
    }
}

/// Prints the `outbox` line of `customer show`.
pub fn print_customer_counts(counts: Option<&Counts>) {
    if let Some(counts) = counts {
        println!("  outbox          {}", describe_counts(counts, Utc::now()));
    }
}

async fn retry_one(outbox: &Outbox, id: i64, json: bool) -> Result<(), ViewError> {
    let before = outbox.get(id).await?;
    let found = outbox.retry(id).await?;
    let Some(entry) = before.filter(|_| found) else {
        return Err(ViewError::NotFound {
            id,
            path: outbox.path().display().to_string(),
        });
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "retried": id, "previous_state": entry.state })
        );
        return Ok(());
    }
    println!(
        "outbox entry {id} ({} for request {}) was {} and is pending again, due now",
        entry.kind, entry.request_id, entry.state
    );
    println!("a running server posts it within a second; check with `tollgate outbox list`");
    Ok(())
}

fn print_list(
    entries: &[Entry],
    counts: &Counts,
    state: EntryState,
    json: bool,
    now: DateTime<Utc>,
) -> Result<(), ViewError> {
    let rows: Vec<Row<'_>> = entries.iter().map(Row::new).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no {state} outbox entries");
    } else {
        print!("{}", render_table(&rows, state, now));
    }
    println!("{}", describe_counts(counts, now));
    Ok(())
}

/// Renders rows as an aligned text table with a header line.
fn render_table(rows: &[Row<'_>], state: EntryState, now: DateTime<Utc>) -> String {
    let last = if state == EntryState::Dead {
        "DEAD REASON"
    } else {
        "NEXT TRY"
    };
    let mut table = vec![vec![
        "ID".to_string(),
        "KIND".to_string(),
        "REQUEST".to_string(),
        "CUSTOMER".to_string(),
        "AMOUNT".to_string(),
        "ATTEMPTS".to_string(),
        "AGE".to_string(),
        last.to_string(),
        "LAST ERROR".to_string(),
    ]];
    for row in rows {
        table.push(row.cells(state, now));
    }

    let columns = table[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            table
                .iter()
                .map(|cells| cells[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in &table {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl<'a> Row<'a> {
    fn new(entry: &'a Entry) -> Row<'a> {
        let customer_id = entry
            .payload
            .get("customer_id")
            .and_then(serde_json::Value::as_str);
        let amount_usd = match entry.kind {
            EntryKind::Charge => entry
                .payload
                .get("amount")
                .and_then(|amount| crate::money::nanos_text::deserialize(amount).ok())
                .map(|amount: Nanos| amount.to_usd().to_string()),
            EntryKind::VoidHold => None,
        };
        Row {
            entry,
            customer_id,
            amount_usd,
        }
    }

    fn cells(&self, state: EntryState, now: DateTime<Utc>) -> Vec<String> {
        let entry = self.entry;
        let last = if state == EntryState::Dead {
            entry.dead_reason.clone().unwrap_or_default()
        } else if entry.next_attempt_at <= now {
            "due".to_string()
        } else {
            format!("in {}", format_age(entry.next_attempt_at - now))
        };
        vec![
            entry.id.to_string(),
            entry.kind.to_string(),
            entry.request_id.clone(),
            self.customer_id.unwrap_or("-").to_string(),
            self.amount_usd
                .as_ref()
                .map_or("-".to_string(), |usd| format!("${usd}")),
            entry.attempts.to_string(),
            format_age(now - entry.created_at),
            shorten(&last),
            shorten(entry.last_error.as_deref().unwrap_or("-")),
        ]
    }
}

/// Summarises counts in one line, such as `2 pending (oldest 4 min), 1 dead`.
fn describe_counts(counts: &Counts, now: DateTime<Utc>) -> String {
    if counts.pending == 0 && counts.dead == 0 {
        return "nothing pending, nothing dead".to_string();
    }
    let oldest = counts
        .oldest_pending
        .map(|oldest| format!(" (oldest {})", format_age(now - oldest)))
        .unwrap_or_default();
    format!("{} pending{oldest}, {} dead", counts.pending, counts.dead)
}

/// Formats a time span in its largest whole unit: days, hours, minutes or seconds.
fn format_age(span: chrono::TimeDelta) -> String {
    let seconds = span.to_std().unwrap_or(Duration::ZERO).as_secs();
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86_400 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// Cuts `text` to [`MAX_CELL_CHARS`] characters, marking the cut with an ellipsis.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_CELL_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn entry(kind: EntryKind, payload: serde_json::Value) -> Entry {
        let created = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Entry {
            id: 7,
            request_id: "0190-req".to_string(),
            kind,
            payload,
            state: EntryState::Pending,
            attempts: 3,
            created_at: created,
            updated_at: created,
            next_attempt_at: created + TimeDelta::seconds(300),
            last_error: Some("Blnk failed with HTTP 503: unavailable".to_string()),
            dead_reason: None,
            age_started_at: created,
        }
    }

    #[test]
    fn ages_use_largest_whole_unit() {
        let cases = [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (7199, "1 h"),
            (3 * 86_400, "3 d"),
            (-5, "0 s"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                format_age(TimeDelta::seconds(seconds)),
                expected,
                "{seconds} s"
            );
        }
    }

    #[test]
    fn counts_read_as_one_line() {
        let now = DateTime::from_timestamp(1_700_000_240, 0).unwrap();
        let empty = Counts::default();
        assert_eq!(
            describe_counts(&empty, now),
            "nothing pending, nothing dead"
        );
        let busy = Counts {
            pending: 2,
            oldest_pending: DateTime::from_timestamp(1_700_000_000, 0),
            dead: 1,
        };
        assert_eq!(
            describe_counts(&busy, now),
            "2 pending (oldest 4 min), 1 dead"
        );
    }

    #[test]
    fn charge_row_shows_customer_and_amount() {
        let charge = entry(
            EntryKind::Charge,
            serde_json::json!({"customer_id": "acme", "amount": "195000"}),
        );
        let row = Row::new(&charge);
        assert_eq!(row.customer_id, Some("acme"));
        assert_eq!(row.amount_usd.as_deref(), Some("0.000195"));

        let now = charge.created_at + TimeDelta::seconds(240);
        let cells = row.cells(EntryState::Pending, now);
        assert_eq!(cells[4], "$0.000195");
        assert_eq!(cells[6], "4 min");
        assert_eq!(cells[7], "in 1 min");
    }

    #[test]
    fn hold_row_has_no_amount() {
        let hold = entry(
            EntryKind::VoidHold,
            serde_json::json!({"customer_id": "acme", "reference": "tg:x:hold"}),
        );
        let cells = Row::new(&hold).cells(EntryState::Pending, hold.next_attempt_at);
        assert_eq!(cells[4], "-");
        assert_eq!(cells[7], "due");
    }

    #[test]
    fn table_columns_align() {
        let first = entry(
            EntryKind::Charge,
            serde_json::json!({"customer_id": "acme", "amount": 5}),
        );
        let rows = vec![Row::new(&first)];
        let table = render_table(&rows, EntryState::Pending, first.created_at);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID  KIND    REQUEST"), "{}", lines[0]);
        assert_eq!(lines[0].find("KIND"), lines[1].find("charge"));
    }

    #[test]
    fn long_text_is_shortened() {
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), MAX_CELL_CHARS);
        assert_eq!(shorten("short"), "short");
    }
}
