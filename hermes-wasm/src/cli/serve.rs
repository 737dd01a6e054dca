use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hermes_event_hubs::config::{self, Simple};
use hermes_event_hubs::endpoint::Endpoint;

use super::CacheArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The endpoint's configuration (YAML): hubs, policies, bus plugin,
    /// TLS (README: "Event Hubs").
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hubs", "policies"])]
    config: Option<PathBuf>,

    /// The address to listen on, over the file's `listen`; default
    /// 127.0.0.1:5672, port 0 for any free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// A hub and its partition count (4 by default). Repeatable.
    #[arg(long = "hub", value_name = "NAME[:PARTITIONS]")]
    hubs: Vec<String>,

    /// A shared access policy, with every right. Repeatable.
    #[arg(long = "policy", value_name = "NAME=KEY")]
    policies: Vec<String>,

    /// Where the hubs given with --hub keep their partitions (the built-in
    /// file-log bus, one log per partition).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "event-hubs-data",
        conflicts_with = "config"
    )]
    data: PathBuf,

    #[command(flatten)]
    cache: CacheArgs,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let engine = args.cache.engine()?;
    let mut serve = match &args.config {
        Some(path) => config::load(path, &engine).await?,
        None => {
            let flags = Simple {
                listen: args.listen.clone(),
                hubs: args.hubs.clone(),
                policies: args.policies.clone(),
                data: args.data.clone(),
            };
            config::simple(&flags, &engine).await?
        }
    };
    if let (Some(_), Some(listen)) = (&args.config, &args.listen) {
        serve.listen = listen
            .parse()
            .map_err(|_| anyhow::anyhow!("--listen: `{listen}` is not an address and port"))?;
    }
    let hubs: Vec<String> = serve
        .config
        .hubs
        .iter()
        .map(|h| format!("{} ({} partitions)", h.name, h.partitions))
        .collect();
    let scheme = if serve.config.tls.is_some() {
        "amqps"
    } else {
        "amqp"
    };
    let emulator = if serve.config.tls.is_some() {
        ""
    } else {
        ";UseDevelopmentEmulator=true"
    };
    let endpoint = Endpoint::bind(serve.listen, serve.config)
        .await
        .with_context(|| format!("serving on {}", serve.listen))?;
    let address = endpoint.local_addr()?;
    // Where it serves, for the operator and for scripts that start it on
    // port 0; best effort: a closed stdout does not stop the endpoint.
    let said = {
        let mut out = std::io::stdout().lock();
        writeln!(out, "serving Event Hubs on {scheme}://{address}: {}", hubs.join(", "))
            .and_then(|()| {
                writeln!(
                    out,
                    "connection string: Endpoint=sb://{address};SharedAccessKeyName=<policy>;SharedAccessKey=<key>{emulator}"
                )
            })
            .and_then(|()| out.flush())
    };
    if let Err(e) = said {
        tracing::debug!("stdout: {e}");
    }
    endpoint.run_until(super::stop_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
