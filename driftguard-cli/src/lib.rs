//! DriftGuard cli (filled by a later issue).
