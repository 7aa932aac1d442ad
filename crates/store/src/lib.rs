//! echotrace-store (not yet implemented; see issue tracker).
