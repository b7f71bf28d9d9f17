pub(crate) async fn run(_c: BenchCommand) -> anyhow::Result<()> {
    Ok(())
}
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    Rooms,
}
