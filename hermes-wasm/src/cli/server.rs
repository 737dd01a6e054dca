use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hermes_jobs::Stop;
use hermes_jobs::server::Server;

use super::CacheArgs;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// hermes-server's configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// Poll once, then stop.
    #[arg(long)]
    once: bool,

    /// Send an initsync sequence after the first poll's changes.
    #[arg(long)]
    initsync: bool,

    /// Work as hermes-server does on a new cache: the first poll fills the
    /// cache and sends nothing; clients get an initsync sequence when a run
    /// is started with --initsync.
    #[arg(long)]
    wait_for_initsync: bool,

    #[command(flatten)]
    cache: CacheArgs,
}

pub async fn run(args: ServerArgs) -> Result<()> {
    let stop = Stop::when(super::stop_signal());
    let engine = args.cache.engine()?;
    let mut server = Server::start(&args.config, &engine).await?;
    server.wait_for_initsync(args.wait_for_initsync);
    let outcome = server
        .run(args.once, args.initsync, &stop, |report| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "poll: {report}")?;
            out.flush()?;
            Ok(())
        })
        .await;
    if stop.is_set() {
        tracing::info!("stopping");
    }
    server.stop().await?;
    outcome
}
