use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
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

    #[command(flatten)]
    cache: CacheArgs,
}

pub async fn run(args: ServerArgs) -> Result<()> {
    let stop = super::stop_signal();
    tokio::pin!(stop);
    let engine = args.cache.engine()?;
    let mut server = Server::start(&args.config, &engine).await?;
    let mut initsync = args.initsync;
    loop {
        match server.poll(initsync).await {
            Ok(report) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "poll: {report}")?;
                out.flush()?;
                initsync = false;
            }
            // A failed poll keeps its unsent changes for the next one.
            Err(e) if !args.once => {
                tracing::error!("poll failed, the next poll sends what is left: {e:#}")
            }
            Err(e) => return Err(e),
        }
        if args.once {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(server.update_interval()) => {}
            () = &mut stop => {
                tracing::info!("stopping");
                break;
            }
        }
    }
    server.stop().await
}
