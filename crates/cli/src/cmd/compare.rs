use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct CompareArgs {}

pub fn run(_args: CompareArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
