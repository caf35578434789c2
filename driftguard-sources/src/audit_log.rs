//! Audit log files as a Kubernetes API server writes them (`--audit-log-path`, one JSON event
//! per line), read on from where the last read stopped and safe across rotation.
//!
//! A read starts at a [`AuditCursor`]: the file's device and inode, the offset after the last
//! complete line read, and a hash of the first bytes read (a new file may get a deleted one's
//! inode). When the file at the path is no longer the one the cursor names,
//! it was rotated (the API server renames it, `audit-2024-05-01T12-00-00.000.log`, or
//! logrotate does, `audit.log.1`): the rest of the old file is found by its inode in the same
//! folder and read first, then the new file from its start. A file shorter than the offset was
//! truncated (`copytruncate`) and is read from its start. A last line not yet ended by a
//! newline is left for the next read. Only the writes among the events are kept
//! ([`AuditEvent::is_write`]), and only their metadata: a request or response body is skipped
//! by the parser, never held.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use driftguard_core::audit::{parse_event_line, AuditCursor, AuditEvent};

/// Longest line read by default (a longer one, an event logged with a big body, is skipped).
pub const DEFAULT_MAX_LINE: usize = 4 * 1024 * 1024;

/// Most writes handed over by one read by default (the caller reads again for the rest).
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// Most problem lines described in a chunk (the others are only counted).
const MAX_DESCRIBED: usize = 5;

/// Why an audit log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The file (or its folder) could not be read.
    #[error("cannot read the audit log {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The blocking read could not run.
    #[error("the audit log reader stopped")]
    Stopped(#[source] tokio::task::JoinError),
}

/// What one read gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditLogChunk {
    /// The writes read, in file order.
    pub events: Vec<AuditEvent>,
    /// Where the next read goes on from (save it with the events).
    pub cursor: AuditCursor,
    /// Complete lines read.
    pub lines: usize,
    /// Lines that were not audit events, or too long.
    pub skipped: usize,
    /// Why some lines were skipped (the first few), and what happened to the file (rotated,
    /// truncated, missing).
    pub notes: Vec<String>,
    /// Whether the end of the file was reached (else read again for more).
    pub done: bool,
}

/// Reads one audit log file.
#[derive(Clone, Debug)]
pub struct AuditLogReader {
    path: PathBuf,
    /// Longest line read (longer ones are skipped).
    pub max_line: usize,
    /// Most writes handed over by one read.
    pub max_events: usize,
}

impl AuditLogReader {
    /// A reader of the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditLogReader {
            path: path.into(),
            max_line: DEFAULT_MAX_LINE,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name cursors of this file are kept under (its path).
    pub fn source(&self) -> String {
        self.path.display().to_string()
    }

    /// Reads on from `cursor` (`None`: from the start), off the async threads.
    pub async fn read(&self, cursor: Option<AuditCursor>) -> Result<AuditLogChunk, AuditLogError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking(cursor.as_ref()))
            .await
            .map_err(AuditLogError::Stopped)?
    }

    /// Reads on from `cursor` (`None`: from the start), blocking.
    pub fn read_blocking(
        &self,
        cursor: Option<&AuditCursor>,
    ) -> Result<AuditLogChunk, AuditLogError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditLogError::Io { path, source }
        };
        let source = self.source();
        let mut chunk = AuditLogChunk {
            cursor: cursor.cloned().unwrap_or_else(|| AuditCursor {
                source: source.clone(),
                ..AuditCursor::default()
            }),
            ..AuditLogChunk::default()
        };
        chunk.cursor.source = source;
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&self.path)(e)),
        };
        let mut budget = self.max_events.max(1);
        let mut start = 0;
        if let Some(c) = cursor {
            let same_file = current
                .as_ref()
                .is_some_and(|m| m.dev() == c.device && m.ino() == c.inode);
            if same_file {
                let len = current.as_ref().map_or(0, |m| m.len());
                if len < c.offset
                    || head_of(&self.path, c.offset).map_err(io(&self.path))? != c.head
                {
                    chunk.notes.push(format!(
                        "{} was truncated or replaced since it was read to byte {}: read again from its start",
                        self.path.display(),
                        c.offset
                    ));
                } else {
                    start = c.offset;
                }
            } else if c.inode != 0 {
                // rotated: the rest of the file read before comes first
                match self.find_rotated(c)? {
                    Some(old) => {
                        let (offset, end) =
                            self.read_file(&old, c.offset, &mut budget, &mut chunk)?;
                        if !end {
                            chunk.cursor.device = c.device;
                            chunk.cursor.inode = c.inode;
                            chunk.cursor.offset = offset;
                            chunk.cursor.head = head_of(&old, offset).map_err(io(&old))?;
                            return Ok(chunk);
                        }
                        chunk.notes.push(format!(
                            "{} was rotated: read the rest of {}",
                            self.path.display(),
                            old.display()
                        ));
                    }
                    None => chunk.notes.push(format!(
                        "{} was rotated and the file read before (inode {}) is gone: what it got after byte {} was not read",
                        self.path.display(),
                        c.inode,
                        c.offset
                    )),
                }
            }
        }
        let Some(meta) = current else {
            chunk
                .notes
                .push(format!("{} does not exist (yet)", self.path.display()));
            chunk.cursor.device = 0;
            chunk.cursor.inode = 0;
            chunk.cursor.offset = 0;
            chunk.done = true;
            return Ok(chunk);
        };
        let (offset, end) = self.read_file(&self.path, start, &mut budget, &mut chunk)?;
        chunk.cursor.device = meta.dev();
        chunk.cursor.inode = meta.ino();
        chunk.cursor.offset = offset;
        chunk.cursor.head = head_of(&self.path, offset).map_err(io(&self.path))?;
        chunk.done = end;
        Ok(chunk)
    }

    /// The file in the path's folder with the cursor's device and inode.
    fn find_rotated(&self, c: &AuditCursor) -> Result<Option<PathBuf>, AuditLogError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let entries = std::fs::read_dir(dir).map_err(|source| AuditLogError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_file()
                && m.dev() == c.device
                && m.ino() == c.inode
                && head_of(&e.path(), c.offset).ok() == Some(c.head)
            {
                return Ok(Some(e.path()));
            }
        }
        Ok(None)
    }

    /// Reads complete lines of `path` from `start` while `budget` lasts. Returns the offset
    /// after the last complete line read and whether the end of the file was reached.
    fn read_file(
        &self,
        path: &Path,
        start: u64,
        budget: &mut usize,
        chunk: &mut AuditLogChunk,
    ) -> Result<(u64, bool), AuditLogError> {
        let io = |source| AuditLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut r = BufReader::with_capacity(256 * 1024, f);
        let mut offset = start;
        let mut line = Vec::new();
        loop {
            if *budget == 0 {
                return Ok((offset, false));
            }
            line.clear();
            let (n, complete, too_long) =
                read_line_limited(&mut r, &mut line, self.max_line).map_err(io)?;
            if n == 0 || !complete {
                // the end, or a last line still being written
                return Ok((offset, true));
            }
            let at = offset;
            offset += n as u64;
            chunk.lines += 1;
            let text = trim_line(&line);
            if too_long {
                self.skip(
                    chunk,
                    format!(
                        "{} at byte {at}: a line longer than {} bytes was skipped",
                        path.display(),
                        self.max_line
                    ),
                );
                continue;
            }
            if text.is_empty() {
                continue;
            }
            match parse_event_line(text) {
                Ok(e) if e.is_write() => {
                    chunk.events.push(e);
                    *budget -= 1;
                }
                Ok(_) => {}
                Err(e) => self.skip(
                    chunk,
                    format!(
                        "{} at byte {at}: {}",
                        path.display(),
                        driftguard_core::error::chain(&e)
                    ),
                ),
            }
        }
    }

    fn skip(&self, chunk: &mut AuditLogChunk, why: String) {
        chunk.skipped += 1;
        if chunk.skipped <= MAX_DESCRIBED {
            chunk.notes.push(why);
        }
    }
}

/// The hash of the first `min(read, 256)` bytes of a file: bytes that were read stay the same
/// in an append-only file.
fn head_of(path: &Path, read: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let n = read.min(256);
    let mut buf = Vec::with_capacity(n as usize);
    File::open(path)?.take(n).read_to_end(&mut buf)?;
    if (buf.len() as u64) < n {
        // shorter than what was read: not the same file, whatever the hash
        return Ok(u64::MAX);
    }
    Ok(xxhash_rust::xxh3::xxh3_64(&buf))
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r' | b' ' | b'\t'] = l {
        l = rest;
    }
    l
}

/// Reads one line into `buf` (bytes past `max` are dropped, not kept). Returns the bytes
/// consumed, whether a newline ended the line, and whether it was longer than `max`.
fn read_line_limited(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool, bool)> {
    let mut total = 0;
    let mut too_long = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok((total, false, too_long));
        }
        let (take, ended) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !too_long {
            if buf.len() + take > max.saturating_add(1) {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        r.consume(take);
        total += take;
        if ended {
            return Ok((total, true, too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn event(id: &str, verb: &str) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/configmaps/c","verb":"{verb}","user":{{"username":"alice"}},"sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.20.2","objectRef":{{"resource":"configmaps","namespace":"shop","name":"c","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-01T12:00:00.000001Z","stageTimestamp":"2024-05-01T12:00:00.000002Z"}}"#
        )
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("opens");
        f.write_all(text.as_bytes()).expect("writes");
    }

    fn ids(c: &AuditLogChunk) -> Vec<String> {
        c.events.iter().map(|e| e.audit_id.clone()).collect()
    }

    #[test]
    fn reads_on_from_the_cursor_and_leaves_a_partial_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let r = AuditLogReader::new(&path);
        let first = r.read_blocking(None).expect("a missing file is no error");
        assert!(first.events.is_empty() && first.done);
        assert!(
            first.notes[0].contains("does not exist"),
            "{:?}",
            first.notes
        );
        append(
            &path,
            &format!(
                "{}\n{}\n{}",
                event("1", "patch"),
                event("2", "get"),
                &event("3", "update")[..40]
            ),
        );
        let c1 = r.read_blocking(Some(&first.cursor)).expect("reads");
        assert_eq!(
            ids(&c1),
            ["1"],
            "reads are not writes; a partial line waits"
        );
        assert_eq!(c1.lines, 2);
        assert!(c1.done);
        append(&path, &format!("{}\n", &event("3", "update")[40..]));
        let c2 = r.read_blocking(Some(&c1.cursor)).expect("reads");
        assert_eq!(ids(&c2), ["3"], "the completed line, once");
        let c3 = r.read_blocking(Some(&c2.cursor)).expect("reads");
        assert!(c3.events.is_empty() && c3.lines == 0);
        assert_eq!(c3.cursor, c2.cursor);
    }

    #[test]
    fn follows_a_rotation_and_a_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let r = AuditLogReader::new(&path);
        append(&path, &format!("{}\n", event("a1", "patch")));
        let c1 = r.read_blocking(None).expect("reads");
        assert_eq!(ids(&c1), ["a1"]);
        // more is written, then the API server rotates: rename, and a new file
        append(&path, &format!("{}\n", event("a2", "patch")));
        std::fs::rename(&path, dir.path().join("audit-2024-05-01T12-00-00.000.log"))
            .expect("rotates");
        append(
            &path,
            &format!("{}\n{}\n", event("b1", "create"), event("b2", "delete")),
        );
        let c2 = r.read_blocking(Some(&c1.cursor)).expect("reads");
        assert_eq!(
            ids(&c2),
            ["a2", "b1", "b2"],
            "the old file's rest, then the new one"
        );
        assert!(
            c2.notes.iter().any(|n| n.contains("rotated")),
            "{:?}",
            c2.notes
        );
        // truncated in place (copytruncate), then written again
        std::fs::write(&path, format!("{}\n", event("c1", "patch"))).expect("truncates");
        let c3 = r.read_blocking(Some(&c2.cursor)).expect("reads");
        assert_eq!(ids(&c3), ["c1"]);
        assert!(
            c3.notes.iter().any(|n| n.contains("truncated")),
            "{:?}",
            c3.notes
        );
        // deleted and made again (the new file may get the old inode): read from its start
        std::fs::remove_file(&path).expect("deleted");
        append(&path, &format!("{}\n", event("d1", "patch")));
        let c4 = r.read_blocking(Some(&c3.cursor)).expect("reads");
        assert_eq!(ids(&c4), ["d1"]);
        // rotated, and the old file compressed away: the new file is read, the loss said
        append(&path, &format!("{}\n", event("d2", "patch")));
        std::fs::rename(&path, dir.path().join("old.log")).expect("rotates");
        let mut gz = dir.path().join("old.log").into_os_string();
        gz.push(".gz");
        std::fs::rename(dir.path().join("old.log"), &gz).expect("renamed");
        std::fs::write(&gz, b"compressed").expect("rewritten");
        append(&path, &format!("{}\n", event("e1", "patch")));
        let c5 = r.read_blocking(Some(&c4.cursor)).expect("reads");
        assert_eq!(ids(&c5), ["e1"]);
        assert!(
            c5.notes.iter().any(|n| n.contains("is gone")),
            "{:?}",
            c5.notes
        );
    }

    #[test]
    fn chunks_skipped_lines_and_long_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&event(&format!("e{i}"), "patch"));
            text.push('\n');
        }
        text.push_str("not json\n\n");
        text.push_str(&format!("{}\n", event(&"x".repeat(1000), "patch")));
        text.push_str(&format!("{}\r\n", event("last", "patch")));
        append(&path, &text);
        let mut r = AuditLogReader::new(&path);
        r.max_events = 2;
        r.max_line = 800;
        let mut cursor = None;
        let mut all = Vec::new();
        let mut skipped = 0;
        let mut notes = Vec::new();
        for _ in 0..10 {
            let c = r.read_blocking(cursor.as_ref()).expect("reads");
            all.extend(ids(&c));
            skipped += c.skipped;
            notes.extend(c.notes.clone());
            cursor = Some(c.cursor.clone());
            if c.done {
                break;
            }
        }
        assert_eq!(all, ["e0", "e1", "e2", "e3", "e4", "last"]);
        assert_eq!(skipped, 2, "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("not an audit event line")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("longer than 800 bytes")),
            "{notes:?}"
        );
    }
}
