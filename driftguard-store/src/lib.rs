//! DriftGuard store (filled by a later issue).
