//! A live source of your own: one JSON file per object in a folder.

use std::path::PathBuf;

use async_trait::async_trait;
use driftguard_core::model::RawLive;
use driftguard_core::ports::{LiveScope, LiveSnapshot, LiveSource, SourceError};

/// The live side read from a folder holding one JSON object per `*.json` file. Only
/// [`LiveSource::snapshot`] is required: without `watch`, the server relies on periodic scans.
#[derive(Debug)]
pub struct JsonDirLiveSource {
    dir: PathBuf,
}

impl JsonDirLiveSource {
    /// Reads `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JsonDirLiveSource { dir: dir.into() }
    }
}

#[async_trait]
impl LiveSource for JsonDirLiveSource {
    fn describe(&self) -> String {
        format!("json folder {}", self.dir.display())
    }

    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError> {
        let unreachable = |e: std::io::Error| SourceError::Unreachable {
            target: self.dir.display().to_string(),
            source: e.into(),
        };
        // which objects a scope admits is the core's rule, not the source's
        let admission = scope.admission()?;
        let mut objects = Vec::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(unreachable)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(unreachable)?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| SourceError::Backend {
                    context: format!("{} is not a JSON object", path.display()),
                    source: e.into(),
                })?;
            if admission.admits(&value) {
                objects.push(RawLive::new(value));
            }
        }
        Ok(LiveSnapshot {
            served: Vec::new(),
            objects: objects.into(),
            errors: Vec::new(),
        })
    }
}
