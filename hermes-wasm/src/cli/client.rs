use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hermes_jobs::Stop;
use hermes_jobs::client::{Client, Status};

use super::CacheArgs;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// hermes-client's configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// Stop once the bus is drained instead of waiting for new events.
    #[arg(long)]
    once: bool,

    #[command(flatten)]
    cache: CacheArgs,
}

pub async fn run(args: ClientArgs) -> Result<()> {
    let signal = super::stop_signal();
    let stop = Stop::when(async move {
        signal.await;
        tracing::info!("stopping after the event in hand");
    });
    let engine = args.cache.engine()?;
    // Run once, an unavailable bus is an error; running on, it is waited for.
    let client = if args.once {
        Some(Client::start(&args.config, &engine).await?)
    } else {
        Client::start_when_available(&args.config, &engine, &stop).await?
    };
    let Some(mut client) = client else {
        writeln!(
            std::io::stdout().lock(),
            "client: stopped before the bus was available"
        )?;
        return Ok(());
    };
    let report = client.run(args.once, &stop).await?;
    client.stop().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "client: {report}")?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// hermes-client's configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    #[command(flatten)]
    cache: CacheArgs,
}

/// Counting the events behind stops here.
const BEHIND_LIMIT: usize = 1_000_000;

pub async fn status(args: StatusArgs) -> Result<()> {
    let engine = args.cache.engine()?;
    let status = Status::read(&args.config, &engine, BEHIND_LIMIT).await?;
    std::io::stdout()
        .lock()
        .write_all(status.to_string().as_bytes())?;
    Ok(())
}
