//! echotrace-server (not yet implemented; see issue tracker).
