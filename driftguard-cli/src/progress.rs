//! A spinner on stderr while scans run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A spinner on stderr for scans that take more than a moment (only on a terminal).
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    message: Arc<Mutex<String>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(enabled: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let message = Arc::new(Mutex::new(String::new()));
        let handle = enabled.then(|| {
            let stop = stop.clone();
            let message = message.clone();
            std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0usize;
                let mut shown = false;
                // only after a moment
                for _ in 0..5 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                while !stop.load(Ordering::Relaxed) {
                    let m = message.lock().map(|m| m.clone()).unwrap_or_default();
                    eprint!("\r\x1b[2K{} {m}", frames[i % frames.len()]);
                    shown = true;
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                if shown {
                    eprint!("\r\x1b[2K");
                }
            })
        });
        Progress {
            stop,
            message,
            handle,
        }
    }

    pub(crate) fn set(&self, m: String) {
        if let Ok(mut g) = self.message.lock() {
            *g = m;
        }
    }

    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
