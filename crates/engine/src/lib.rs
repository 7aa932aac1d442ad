//! echotrace-engine (not yet implemented; see issue tracker).
