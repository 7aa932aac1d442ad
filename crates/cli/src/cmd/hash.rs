use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct HashArgs {}

pub fn run(_args: HashArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
