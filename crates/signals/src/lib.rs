//! Content bytes → signals.
//!
//! (Module docs are filled in by each module's owner; see ARCHITECTURE.md.)

pub mod canonical_url;
pub mod content;
pub mod decode;
pub mod digest;
pub mod isolate;
pub mod ocr;
pub mod pdf;
pub mod pdf_render;
pub mod pdq;
pub mod robust;
pub mod signal;
pub mod text;
pub mod video;
