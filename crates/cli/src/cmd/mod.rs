//! One module per subcommand. Each exposes an `Args` struct and `run`.

pub mod compare;
pub mod hash;
