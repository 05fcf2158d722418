//! The insert journal: how a new entry becomes durable without waiting for a SQLite commit.
//!
//! With [`Durability::Process`](crate::config::Durability::Process), a new entry only has to
//! survive `kill -9` before its ledger operation is posted, and a write that reached the
//! operating system's page cache does. So the server appends each new entry to a journal file
//! with one `write` call on the caller's own thread and gives it an id at once. The writer
//! thread then commits the insert with its next batch. The caller does not wait for SQLite,
//! and the writer can put many inserts into one commit.
//!
//! The journal is a series of segment files, `outbox-journal-<n>.log` in the data directory.
//! A segment is closed after [`SEGMENT_LIMIT`] bytes, and deleted once every entry in it has
//! committed. At every start, whatever its durability, the server inserts every entry it
//! finds in old segments (an entry stored already is left as it is), commits and deletes the
//! segments. Appends always go to a new segment, so a record cut short by a kill can only be
//! the last one of its segment.
//!
//! Record layout, integers little-endian:
//!
//! ```text
//! magic "TGJ1" | body length u32 | body | body length u32
//! body: id i64 | created_at ms i64 | next_attempt_at ms i64 | kind u8 |
//!       request_id | customer_id (u8 present flag, then the string) | payload
//! string: length u32 | UTF-8 bytes
//! ```
//!
//! The repeated length marks a complete record. No checksum is kept: a kill cuts a write
//! short but does not corrupt what it wrote, and a power loss is outside this durability.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use chrono::Utc;
use rusqlite::Connection;

use super::{EntryKind, NewEntry, OutboxError, mutations};

/// Size after which a segment is closed and a new one started. At about 2 KB per entry, a
/// segment contains some 2,000 entries.
pub(super) const SEGMENT_LIMIT: u64 = 4 << 20;

const MAGIC: &[u8; 4] = b"TGJ1";
const PREFIX: &str = "outbox-journal-";
const SUFFIX: &str = ".log";
const NO_TIME: i64 = i64::MIN;

/// A journaled entry on its way to the writer thread.
#[derive(Debug)]
pub(super) struct JournaledInsert {
    pub(super) id: i64,
    pub(super) created_ms: i64,
    pub(super) entry: NewEntry,
}

/// The journal of one server's data directory.
pub(super) struct Journal {
    dir: PathBuf,
    segment_limit: u64,
    state: Mutex<State>,
}

struct State {
    /// The open segment; `None` once the writer has stopped.
    file: Option<File>,
    number: u64,
    len: u64,
    /// The first and last ids appended to the open segment, if any.
    first_in_segment: Option<i64>,
    last_in_segment: Option<i64>,
    /// Set when a failed append left part of a record that could not be cut off. No record
    /// may follow it in the same segment, because replay stops at the first incomplete one.
    torn: bool,
    /// Closed segments, oldest first.
    sealed: VecDeque<Sealed>,
    next_id: i64,
    buffer: Vec<u8>,
}

/// A closed segment and the ids it contains.
struct Sealed {
    path: PathBuf,
    first: i64,
    last: i64,
}

impl JournaledInsert {
    /// Inserts the entry with its own id. Returns false, changing nothing, when the store
    /// contains it already or contains another entry for the same `(request_id, kind)`.
    pub(super) fn apply(&self, conn: &Connection) -> rusqlite::Result<bool> {
        mutations::insert_row(conn, Some(self.id), &self.entry, self.created_ms)
    }
}

impl Journal {
    /// Replays the journal of `dir` into `conn` and starts a new segment. `conn` is the
    /// writer connection, before the writer thread takes it.
    pub(super) fn open(dir: &Path, conn: &mut Connection) -> Result<Journal, OutboxError> {
        Journal::open_with_limit(dir, conn, SEGMENT_LIMIT)
    }

    pub(super) fn open_with_limit(
        dir: &Path,
        conn: &mut Connection,
        segment_limit: u64,
    ) -> Result<Journal, OutboxError> {
        let number = replay(dir, conn)?;
        let next_id = highest_id(conn, dir)? + 1;
        let file = create_segment(dir, number)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            segment_limit,
            state: Mutex::new(State {
                file: Some(file),
                number,
                len: 0,
                first_in_segment: None,
                last_in_segment: None,
                torn: false,
                sealed: VecDeque::new(),
                next_id,
                buffer: Vec::with_capacity(4096),
            }),
        })
    }

    /// Gives `entry` the next id, appends it to the open segment, and calls `send` with the
    /// insert, all under one lock, so the writer receives inserts in the order of their ids.
    /// When `send` fails (the writer has stopped), the record is cut off the file again.
    pub(super) fn append(
        &self,
        entry: NewEntry,
        send: impl FnOnce(JournaledInsert) -> bool,
        db_path: &Path,
    ) -> Result<i64, OutboxError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        if state.file.is_some() && state.torn {
            self.rotate(state)?;
            state.torn = false;
        }
        let Some(file) = state.file.as_mut() else {
            return Err(OutboxError::WriterStopped {
                path: db_path.to_path_buf(),
            });
        };

        let id = state.next_id;
        let created_ms = Utc::now().timestamp_millis();
        encode(&mut state.buffer, id, created_ms, &entry);
        if let Err(source) = file.write_all(&state.buffer) {
            // A partial record would hide the records after it, so it is cut off, or else
            // the next append starts a new segment.
            state.torn = file.set_len(state.len).is_err();
            return Err(journal_error(
                &segment_path(&self.dir, state.number),
                source,
            ));
        }

        let insert = JournaledInsert {
            id,
            created_ms,
            entry,
        };
        if !send(insert) {
            state.torn = file.set_len(state.len).is_err();
            return Err(OutboxError::WriterStopped {
                path: db_path.to_path_buf(),
            });
        }

        state.next_id += 1;
        state.len += state.buffer.len() as u64;
        state.first_in_segment.get_or_insert(id);
        state.last_in_segment = Some(id);
        // The entry is stored either way, so a failed rotation only lets the segment grow
        // until the next append tries again.
        if state.len >= self.segment_limit
            && let Err(error) = self.rotate(state)
        {
            tracing::warn!(%error, "could not start a new outbox journal segment; the current one grows until one can be started");
        }
        Ok(id)
    }

    /// Hands out an id for an insert that does not go through the journal, so the two kinds
    /// of insert never pick the same id.
    pub(super) fn next_id(&self) -> i64 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let id = state.next_id;
        state.next_id += 1;
        id
    }

    /// Returns the lowest id that a journal segment still contains. A purge must keep the
    /// entries from this id on, because a replay after a crash would insert them again.
    pub(super) fn lowest_retained_id(&self) -> Option<i64> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .sealed
            .front()
            .map(|sealed| sealed.first)
            .or(state.first_in_segment)
    }

    /// Deletes the closed segments whose entries have all committed, given that every
    /// journaled id up to `committed` has.
    pub(super) fn release_through(&self, committed: i64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Sealed { path, last, .. }) = state.sealed.front() {
            if *last > committed {
                break;
            }
            if let Err(error) = fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "could not delete a committed outbox journal segment; the next start replays it");
            }
            state.sealed.pop_front();
        }
    }

    /// Rejects later appends. When every journaled id up to the last one appended has
    /// committed (`committed`), deletes the open segment too, so a clean stop leaves no
    /// journal behind.
    pub(super) fn close(&self, committed: i64) {
        self.release_through(committed);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.file = None;
        let all_committed = state.last_in_segment.is_none_or(|last| last <= committed);
        if all_committed && state.sealed.is_empty() {
            let path = segment_path(&self.dir, state.number);
            if let Err(error) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "could not delete the outbox journal; the next start replays it");
            }
        }
    }

    fn rotate(&self, state: &mut State) -> Result<(), OutboxError> {
        let file = create_segment(&self.dir, state.number + 1)?;
        let old = segment_path(&self.dir, state.number);
        if let (Some(first), Some(last)) = (state.first_in_segment, state.last_in_segment) {
            state.sealed.push_back(Sealed {
                path: old,
                first,
                last,
            });
        } else if let Err(error) = fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), %error, "could not delete an empty outbox journal segment");
        }
        state.file = Some(file);
        state.number += 1;
        state.len = 0;
        state.first_in_segment = None;
        state.last_in_segment = None;
        Ok(())
    }
}

/// Stores every entry that the journal segments in `dir` contain and that never committed,
/// then deletes the segments. Returns the number for the next segment. The server calls it
/// at every start, whatever its durability, so that a start with power durability after a
/// crash with process durability loses nothing either.
pub(super) fn replay(dir: &Path, conn: &mut Connection) -> Result<u64, OutboxError> {
    let segments = list_segments(dir).map_err(|source| journal_error(dir, source))?;
    let recovered = recover(dir, &segments, conn)?;
    for (_, path) in &segments {
        fs::remove_file(path).map_err(|source| journal_error(path, source))?;
    }
    if recovered > 0 {
        tracing::warn!(dir = %dir.display(), entries = recovered,
            "outbox journal replayed after an unclean stop; the worker checks each entry against the ledger");
    }
    Ok(segments.last().map_or(1, |(number, _)| number + 1))
}

/// Inserts every complete record of `segments` in one transaction. Returns how many were
/// not in the store yet.
fn recover(
    dir: &Path,
    segments: &[(u64, PathBuf)],
    conn: &mut Connection,
) -> Result<u64, OutboxError> {
    if segments.is_empty() {
        return Ok(0);
    }
    let sqlite_error = |source| OutboxError::Sqlite {
        path: dir.to_path_buf(),
        source,
    };
    let tx = conn.transaction().map_err(sqlite_error)?;
    let mut recovered = 0;
    for (_, path) in segments {
        let bytes = fs::read(path).map_err(|source| journal_error(path, source))?;
        let (records, torn) = decode_all(&bytes);
        if torn {
            tracing::warn!(path = %path.display(), "the last record of an outbox journal segment was cut short; its write failed or never returned, so nothing was posted for it");
        }
        for record in records {
            if record.apply(&tx).map_err(sqlite_error)? {
                recovered += 1;
            }
        }
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(recovered)
}

/// Returns the highest id the store contains or SQLite has ever assigned.
fn highest_id(conn: &Connection, dir: &Path) -> Result<i64, OutboxError> {
    conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM entries), 0),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'entries'), 0))",
        [],
        |row| row.get(0),
    )
    .map_err(|source| OutboxError::Sqlite {
        path: dir.to_path_buf(),
        source,
    })
}

fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_prefix(PREFIX))
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((number, item.path()));
    }
    segments.sort();
    Ok(segments)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{number:08}{SUFFIX}"))
}

fn create_segment(dir: &Path, number: u64) -> Result<File, OutboxError> {
    let path = segment_path(dir, number);
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|source| journal_error(&path, source))
}

fn journal_error(path: &Path, source: io::Error) -> OutboxError {
    OutboxError::Journal {
        path: path.to_path_buf(),
        source,
    }
}

fn encode(buffer: &mut Vec<u8>, id: i64, created_ms: i64, entry: &NewEntry) {
    buffer.clear();
    buffer.extend_from_slice(MAGIC);
    buffer.extend_from_slice(&[0; 4]);
    buffer.extend_from_slice(&id.to_le_bytes());
    buffer.extend_from_slice(&created_ms.to_le_bytes());
    let next_ms = entry
        .next_attempt_at
        .map_or(NO_TIME, |time| time.timestamp_millis());
    buffer.extend_from_slice(&next_ms.to_le_bytes());
    buffer.push(match entry.kind {
        EntryKind::Charge => 0,
        EntryKind::VoidHold => 1,
    });
    put_str(buffer, &entry.request_id);
    match &entry.customer_id {
        Some(customer) => {
            buffer.push(1);
            put_str(buffer, customer);
        }
        None => buffer.push(0),
    }
    put_str(buffer, &entry.payload);

    let body_len = (buffer.len() - 8) as u32;
    buffer[4..8].copy_from_slice(&body_len.to_le_bytes());
    buffer.extend_from_slice(&body_len.to_le_bytes());
}

fn put_str(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend_from_slice(&(text.len() as u32).to_le_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

/// Decodes the complete records of one segment. The flag is set when bytes after the last
/// complete record do not form one.
fn decode_all(bytes: &[u8]) -> (Vec<JournaledInsert>, bool) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode_one(rest) {
            Some((record, used)) => {
                records.push(record);
                rest = &rest[used..];
            }
            None => return (records, true),
        }
    }
    (records, false)
}

fn decode_one(bytes: &[u8]) -> Option<(JournaledInsert, usize)> {
    if bytes.get(..4)? != MAGIC {
        return None;
    }
    let body_len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let end = 8usize.checked_add(body_len)?;
    let body = bytes.get(8..end)?;
    let trailer = u32::from_le_bytes(bytes.get(end..end + 4)?.try_into().ok()?) as usize;
    if trailer != body_len {
        return None;
    }

    let mut reader = Reader(body);
    let id = reader.i64()?;
    let created_ms = reader.i64()?;
    let next_ms = reader.i64()?;
    let kind = match reader.u8()? {
        0 => EntryKind::Charge,
        1 => EntryKind::VoidHold,
        _ => return None,
    };
    let request_id = reader.string()?;
    let customer_id = match reader.u8()? {
        0 => None,
        1 => Some(reader.string()?),
        _ => return None,
    };
    let payload = reader.string()?;
    let next_attempt_at = if next_ms == NO_TIME {
        None
    } else {
        Some(chrono::DateTime::from_timestamp_millis(next_ms)?)
    };
    let entry = NewEntry {
        request_id,
        kind,
        customer_id,
        payload,
        next_attempt_at,
    };
    Some((
        JournaledInsert {
            id,
            created_ms,
            entry,
        },
        end + 4,
    ))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
