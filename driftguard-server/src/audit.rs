//! Audit events into an environment's index of recent writes: the bodies the API server's
//! webhook backend posts (see [`crate::api`]) and the lines of its audit log file, read on
//! from where the last read stopped ([`read_log`]; `driftguard scan` calls it before each
//! scan, `driftguard serve` follows the file).

use std::time::Duration;

use driftguard_core::audit::AuditObject;
use driftguard_core::ports::StoreError;
use driftguard_core::scanner::Scanner;
use driftguard_sources::audit_log::{AuditLogError, AuditLogReader};

/// Largest audit webhook body taken by default (16 MiB).
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// How often `serve` reads an audit log file by default.
pub const DEFAULT_LOG_POLL: Duration = Duration::from_secs(2);

/// Where an environment's audit events come from (its `audit` section, resolved).
#[derive(Clone)]
pub struct AuditSettings {
    /// Bearer tokens the webhook accepts (empty: no webhook).
    pub tokens: Vec<String>,
    /// Whether the webhook is on.
    pub webhook: bool,
    /// Largest webhook body taken.
    pub max_body: usize,
    /// The audit log file, if any.
    pub log: Option<AuditLogReader>,
    /// How often `serve` reads it.
    pub log_every: Duration,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("webhook", &self.webhook)
            .field("tokens", &format_args!("{} (redacted)", self.tokens.len()))
            .field("max_body", &self.max_body)
            .field("log", &self.log.as_ref().map(AuditLogReader::path))
            .field("log_every", &self.log_every)
            .finish()
    }
}

/// Why an audit log could not be read into the index.
#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    /// The file could not be read.
    #[error(transparent)]
    Log(#[from] AuditLogError),
    /// The index could not be read or saved (what was read is kept in memory and saved with
    /// the next read).
    #[error("cannot save the audit index")]
    Store(#[source] StoreError),
}

/// What reading an audit log gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRead {
    /// Writes read.
    pub writes: usize,
    /// Of them, writes new to the index.
    pub indexed: usize,
    /// Lines that were not audit events (or too long).
    pub skipped: usize,
    /// What happened to the file, and why lines were skipped.
    pub notes: Vec<String>,
    /// The objects that gained writes.
    pub objects: Vec<AuditObject>,
}

/// Reads an audit log file on from the cursor the scanner's index keeps into that index, in
/// chunks, each saved with its cursor (a crash re-reads at most one chunk, and nothing is
/// indexed twice).
pub async fn read_log(
    scanner: &Scanner,
    reader: &AuditLogReader,
) -> Result<LogRead, AuditReadError> {
    let mut cursor = scanner
        .audit_cursor(&reader.source())
        .await
        .map_err(AuditReadError::Store)?;
    let mut out = LogRead::default();
    loop {
        let chunk = reader.read(cursor.clone()).await?;
        let stats = scanner
            .ingest_audit(&chunk.events, Some(chunk.cursor.clone()))
            .await
            .map_err(AuditReadError::Store)?;
        out.writes += chunk.events.len();
        out.indexed += stats.indexed;
        out.skipped += chunk.skipped;
        out.notes.extend(chunk.notes);
        out.objects.extend(stats.objects);
        cursor = Some(chunk.cursor);
        if chunk.done {
            break;
        }
    }
    out.objects.sort();
    out.objects.dedup();
    Ok(out)
}
