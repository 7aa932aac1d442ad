//! Content bytes → signals.
//!
//! (Module docs are filled in by each module's owner; see ARCHITECTURE.md.)

pub mod decode;
pub mod digest;
pub mod pdq;
pub mod signal;
