//! Subcommands whose implementation has not landed yet: they are listed so the command surface
//! is visible, and fail clearly instead of pretending to work.

use anyhow::bail;

/// Arguments are accepted as given until the subcommand lands.
#[derive(clap::Args, Debug)]
pub struct PendingArgs {
    /// Arguments of the subcommand.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Fails with a message naming the work that will provide the subcommand.
pub fn run(name: &str, area: &str, _args: &PendingArgs) -> anyhow::Result<()> {
    bail!("`glace {name}` is not available in this build yet (it arrives with the {area} work)")
}
