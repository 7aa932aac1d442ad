//! Signals → candidate ids.
