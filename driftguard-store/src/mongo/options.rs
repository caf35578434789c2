//! The settings of the MongoDB store: plain values, the same in a build without the driver
//! (feature `mongodb`), so that a configuration is read alike either way.

use std::time::Duration;

/// Settings of the MongoDB store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MongoOptions {
    /// Connection string (TLS and auth options pass through, e.g. `?tls=true&tlsCAFile=...`).
    pub uri: String,
    /// Database name.
    pub database: String,
    /// Age after which events, scans and resolved episodes expire (TTL indexes). `None`: kept.
    pub retention: Option<Duration>,
    /// How long an operation waits for a reachable server before failing as unavailable (also
    /// the connect timeout). A `serverSelectionTimeoutMS` in the URI takes precedence.
    pub server_selection_timeout: Duration,
}

impl MongoOptions {
    /// Options for `uri` and `database`, no retention, 5 s server selection timeout.
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> Self {
        MongoOptions {
            uri: uri.into(),
            database: database.into(),
            retention: None,
            server_selection_timeout: Duration::from_secs(5),
        }
    }
}
