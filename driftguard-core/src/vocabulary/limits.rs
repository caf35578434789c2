//! Limits on what one input may cost: how large a manifest file or a dump may be, and how many
//! objects one source may hand over. Input beyond a limit is a clear error naming the limit and
//! the setting that raises it; for manifest files it is the error of that file only, and the
//! rest of the scan goes on.

use serde::{Deserialize, Serialize};

use crate::manifest::ManifestError;

/// The limits of one environment's sources (`limits:` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest manifest file read (bytes): a larger file is an error of its own, not read.
    pub max_manifest_bytes: u64,
    /// Largest dump file read (bytes).
    pub max_dump_bytes: u64,
    /// Most objects one source hands over in one read.
    pub max_objects: usize,
}

/// Default [`Limits::max_manifest_bytes`]: 16 MiB (the largest manifests seen in practice,
/// generated CRDs, are a few MiB).
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// Default [`Limits::max_dump_bytes`]: 512 MiB.
pub const DEFAULT_MAX_DUMP_BYTES: u64 = 512 * 1024 * 1024;
/// Default [`Limits::max_objects`]: 500,000.
pub const DEFAULT_MAX_OBJECTS: usize = 500_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_dump_bytes: DEFAULT_MAX_DUMP_BYTES,
            max_objects: DEFAULT_MAX_OBJECTS,
        }
    }
}

/// Which limit an input went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_manifest_bytes`].
    ManifestBytes,
    /// [`Limits::max_dump_bytes`].
    DumpBytes,
    /// [`Limits::max_objects`].
    Objects,
}

impl Limit {
    /// The configuration key that raises it.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::ManifestBytes => "limits.maxManifestBytes",
            Limit::DumpBytes => "limits.maxDumpBytes",
            Limit::Objects => "limits.maxObjects",
        }
    }
}

impl Limits {
    /// `Ok` when a manifest file of `size` bytes may be read, else the file's error.
    pub fn check_manifest(&self, file: &str, size: u64) -> Result<(), ManifestError> {
        over(
            file,
            size,
            self.max_manifest_bytes,
            Limit::ManifestBytes,
            "bytes",
        )
    }

    /// `Ok` when a dump of `size` bytes may be read.
    pub fn check_dump(&self, file: &str, size: u64) -> Result<(), ManifestError> {
        over(file, size, self.max_dump_bytes, Limit::DumpBytes, "bytes")
    }

    /// `Ok` when `count` objects may be handed over.
    pub fn check_objects(&self, source: &str, count: usize) -> Result<(), ManifestError> {
        over(
            source,
            count as u64,
            self.max_objects as u64,
            Limit::Objects,
            "objects",
        )
    }
}

fn over(file: &str, size: u64, max: u64, limit: Limit, unit: &str) -> Result<(), ManifestError> {
    if size <= max {
        return Ok(());
    }
    Err(ManifestError {
        file: file.to_owned(),
        line: 0,
        field: None,
        message: format!(
            "{size} {unit}, over the limit of {max} {unit} ({} raises it); not read",
            limit.setting()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_a_limit_names_the_setting() {
        let l = Limits::default();
        assert!(l
            .check_manifest("a.yaml", DEFAULT_MAX_MANIFEST_BYTES)
            .is_ok());
        let e = l
            .check_manifest("a.yaml", DEFAULT_MAX_MANIFEST_BYTES + 1)
            .expect_err("over");
        assert_eq!(e.file, "a.yaml");
        assert!(e.message.contains("limits.maxManifestBytes"), "{e}");
        let e = l.check_objects("dump d.yaml", 500_001).expect_err("over");
        assert!(e.message.contains("500001 objects"), "{e}");
        assert!(e.message.contains("limits.maxObjects"), "{e}");
    }
}
