//! A notifier of your own: one line per event.

use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;
use driftguard_core::ports::{Notification, Notifier, NotifyError};

/// Writes one line per event (`detected prod Deployment/shop/api modified forward high
/// [spec.replicas]`) to any writer: a file, a pipe, standard output. Field paths only: a
/// notification never carries values.
pub struct LineNotifier<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> LineNotifier<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        LineNotifier {
            out: Mutex::new(out),
        }
    }

    /// The writer back (e.g. a `Vec<u8>` to look at).
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl<W: Write + Send> Notifier for LineNotifier<W> {
    fn name(&self) -> &str {
        "lines"
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let mut out = self.out.lock().map_err(|_| NotifyError::Backend {
            context: "the writer's lock is poisoned".into(),
            source: "poisoned".into(),
        })?;
        for e in &n.events {
            let d = &e.drift;
            writeln!(
                out,
                "{} {} {}/{} {} {} {} [{}]",
                e.kind,
                n.environment,
                d.id.group_kind(),
                d.id.namespaced_name(),
                d.kind,
                d.direction,
                d.severity,
                d.paths().join(", ")
            )
            .map_err(|e| NotifyError::Unreachable { source: e.into() })?;
        }
        Ok(())
    }
}
