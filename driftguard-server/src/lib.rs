//! DriftGuard server (filled by a later issue).
