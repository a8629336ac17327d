//! Test PKI (placeholder).
