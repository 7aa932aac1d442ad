//! One module per subcommand. Each exposes an `Args` struct and `run`.

pub mod bank;
pub mod compare;
pub mod hash;
pub mod keys;
pub mod match_;
pub mod serve;
pub mod users;
