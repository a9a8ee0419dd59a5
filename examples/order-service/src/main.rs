//! The order service: `serve` the HTTP API (the default), `rebuild` a projection, print an
//! order's `events`, or show `stats`. SQLite file `orders.db` unless `--database-url` or
//! `DATABASE_URL` names another database (`postgres://...` for PostgreSQL).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool: printing is its job

use es_core::EventLog;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use es_core::{Projection as _, RebuildOptions, RebuildStep, StreamId, StreamVersion};
use futures_util::TryStreamExt as _;
use order_service::backend::{
    AnyBackend, Backend, DEFAULT_DATABASE_URL, OpenOptions, is_postgres, redact,
};
use order_service::domain::Order;
use order_service::server::ServerLimits;
use order_service::shipment::Shipping;
use order_service::summary_table::OrderSummaryTable;

/// The example order service of the es framework.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The database: an SQLite file (`sqlite://orders.db`, or a path) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,

    /// The PostgreSQL schema for events and read model (ignored on SQLite).
    #[arg(
        long,
        env = "ORDERS_PG_SCHEMA",
        default_value = "orders",
        global = true
    )]
    pg_schema: String,

    /// How log lines are written to standard error: `text` (coloured only on a terminal) or
    /// `json` (one object per line, for a log collector). `RUST_LOG` filters them.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API (the default command).
    Serve {
        /// The address to listen on (`127.0.0.1:0` takes any free port, and logs it).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        limits: Limits,
    },
    /// Rebuilds a projection from the start of the log, showing progress. Safe next to a
    /// running service: the service's worker hands the projection over (or, with
    /// `--takeover`, is fenced out at once) before anything is cleared, and takes it back
    /// after the rebuild.
    Rebuild {
        /// The projection (`order_summary`, or the `shipping` process manager).
        projection: String,
        /// Take the projection's lease at once instead of waiting for its holder to hand it
        /// over (the holder's batch in flight commits nothing).
        #[arg(long)]
        takeover: bool,
        /// How many seconds to wait for the lease's holder to hand it over.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Prints the events of one order.
    Events {
        /// The order id (a UUID).
        order_id: uuid::Uuid,
    },
    /// Prints event and stream counts and the projections' lag.
    Stats,
    /// Prints the API's OpenAPI 3.1 document (what `GET /openapi.json` serves); opens no
    /// store.
    Openapi,
}

/// How long clients may take and how many may be connected (see `order_service::server`).
#[derive(Debug, clap::Args)]
struct Limits {
    /// Seconds a client may take to send a request's headers, from its first byte.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    header_timeout: f64,
    /// Seconds a client may take to send a request's body, from its headers.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    body_timeout: f64,
    /// Seconds a connection may sit idle (no request in flight) before it is closed.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    idle_timeout: f64,
    /// Seconds a shutdown (Ctrl-C, SIGTERM) waits for requests in flight before it closes
    /// their connections.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    shutdown_timeout: f64,
    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
}

impl Limits {
    fn server_limits(&self) -> Result<ServerLimits, Box<dyn Error>> {
        let seconds = |flag: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| {
                    format!("--{flag} must be a positive number of seconds, not {value}")
                })
        };
        Ok(ServerLimits {
            header_timeout: seconds("header-timeout", self.header_timeout)?,
            body_timeout: seconds("body-timeout", self.body_timeout)?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            shutdown_timeout: seconds("shutdown-timeout", self.shutdown_timeout)?,
            max_connections: self.max_connections.max(1),
        })
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // PostgreSQL's notices ("already exists, skipping") are for whoever reads the server's log,
    // unless `RUST_LOG` names them.
    const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = if wanted.contains("sqlx::postgres::notice") {
        tracing_subscriber::EnvFilter::new(wanted)
    } else {
        tracing_subscriber::EnvFilter::new(format!("{wanted},{QUIET_NOTICES}"))
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    if let Err(error) = run(cli).await {
        eprintln!("error: {}", es_core::ErrorChain(error.as_ref()));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    if matches!(cli.command, Some(Command::Openapi)) {
        println!(
            "{}",
            serde_json::to_string_pretty(&order_service::http::document())?
        );
        return Ok(());
    }
    let options = OpenOptions {
        database_url: cli.database_url,
        postgres_schema: cli.pg_schema,
        // The tools that only read create, migrate and change nothing.
        read_only: matches!(cli.command, Some(Command::Events { .. } | Command::Stats)),
        ..OpenOptions::default()
    };
    let where_ = if is_postgres(&options.database_url) {
        format!(
            "{} (schema {})",
            redact(&options.database_url),
            options.postgres_schema
        )
    } else {
        redact(&options.database_url)
    };
    let command = cli.command.unwrap_or_else(|| Command::Serve {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        limits: Limits {
            header_timeout: 10.0,
            body_timeout: 30.0,
            idle_timeout: 60.0,
            shutdown_timeout: 30.0,
            max_connections: 512,
        },
    });
    match AnyBackend::open(options).await? {
        AnyBackend::Sqlite(backend) => execute(backend, command, &where_).await,
        AnyBackend::Postgres(backend) => execute(backend, command, &where_).await,
    }
}

async fn execute<B: Backend>(
    backend: B,
    command: Command,
    where_: &str,
) -> Result<(), Box<dyn Error>> {
    match command {
        Command::Serve { addr, limits } => {
            serve(backend, addr, limits.server_limits()?, where_).await
        }
        Command::Rebuild {
            projection,
            takeover,
            wait,
        } => {
            let mut options =
                RebuildOptions::default().wait_at_most(std::time::Duration::from_secs(wait));
            if takeover {
                options = options.take_over();
            }
            rebuild(&backend, &projection, options).await
        }
        Command::Events { order_id } => events(&backend, order_id).await,
        Command::Stats => stats(&backend).await,
        // Answered before any store is opened.
        Command::Openapi => Ok(()),
    }
}

async fn serve<B: Backend>(
    backend: B,
    addr: SocketAddr,
    limits: ServerLimits,
    where_: &str,
) -> Result<(), Box<dyn Error>> {
    let workers = backend.app().start_projections();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        format!(
            "cannot listen on {addr}: {error} (is another service on that port? choose another with --addr, e.g. --addr 127.0.0.1:8081)"
        )
    })?;
    let bound = listener.local_addr()?;
    tracing::info!("order service listening on http://{bound}, events in {where_}");
    order_service::server::serve(
        listener,
        order_service::http::router(backend),
        limits,
        shutdown_signal(),
    )
    .await?;
    tracing::info!("requests finished; stopping projections");
    workers.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn rebuild<B: Backend>(
    backend: &B,
    projection: &str,
    options: RebuildOptions,
) -> Result<(), Box<dyn Error>> {
    if projection != OrderSummaryTable::NAME && projection != Shipping::NAME {
        return Err(format!(
            "unknown projection `{projection}`; known: {}, {}",
            OrderSummaryTable::NAME,
            Shipping::NAME
        )
        .into());
    }
    // `shipping` is a process manager: its replay re-issues its commands with their first
    // idempotency ids, so no shipment is created twice.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .map_err(|error| error.to_string())?
        .progress_chars("=> "),
    );
    let mut last_wait_note: Option<std::time::Instant> = None;
    let applied = backend
        .app()
        .rebuild_with(projection, options, |step| match step {
            // Once a second is enough to show the wait goes on.
            RebuildStep::Waiting { holder }
                if last_wait_note.is_none_or(|at| at.elapsed().as_secs() >= 1) =>
            {
                last_wait_note = Some(std::time::Instant::now());
                bar.suspend(|| {
                    eprintln!(
                        "waiting for worker {} to hand {projection} over (asked; its lease runs out in {:.1} s)",
                        holder.owner,
                        holder.expires_in.as_secs_f64()
                    );
                });
            }
            RebuildStep::TookOver { from } => bar.suspend(|| {
                eprintln!("took {projection} over from worker {from}: it commits nothing more");
            }),
            RebuildStep::LeaseTaken { epoch } => bar.suspend(|| {
                eprintln!("holding the lease on {projection} (epoch {epoch})");
            }),
            RebuildStep::Cleared => {
                bar.set_message(format!("rebuilding {projection}"));
                bar.suspend(|| eprintln!("cleared {projection}; replaying the log"));
            }
            RebuildStep::Progress(progress) => {
                bar.set_length(progress.total.max(progress.done));
                bar.set_position(progress.done);
            }
            _ => {}
        })
        .await?;
    bar.finish_with_message(format!("rebuilt {projection}"));
    println!("rebuilt {projection} from {applied} events");
    Ok(())
}

async fn events<B: Backend>(backend: &B, order_id: uuid::Uuid) -> Result<(), Box<dyn Error>> {
    let stream_id = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, order_id)?;
    let events: Vec<_> = backend
        .app()
        .store()
        .load(&stream_id, StreamVersion::INITIAL)
        .try_collect()
        .await?;
    if events.is_empty() {
        return Err(format!("no order {order_id}").into());
    }
    for event in events {
        println!(
            "v{} #{} {} {} {} {}",
            event.stream_version,
            event.position,
            event.recorded_at,
            event.event_type,
            event.payload.get(),
            serde_json::to_string(&event.metadata)?
        );
    }
    Ok(())
}

async fn stats<B: Backend>(backend: &B) -> Result<(), Box<dyn Error>> {
    let counts = backend.counts().await?;
    let head = backend.app().store().head().await?;
    println!("backend:  {}", backend.kind());
    println!("events:   {}", counts.events);
    println!("streams:  {}", counts.streams);
    println!(
        "head:     {}",
        head.map_or_else(|| "-".to_owned(), |head| head.position.to_string())
    );
    for report in backend.app().projection_report().await? {
        let owner = match &report.owner {
            Some((owner, true)) => format!("leased by {owner}"),
            Some((owner, false)) => format!("lease of {owner} expired"),
            None => "never run by a worker".to_owned(),
        };
        println!(
            "projection {}: checkpoint {}, {} events ({:.1} s) behind, {owner}",
            report.status.name,
            report.checkpoint.position,
            report.events_behind,
            report.seconds_behind
        );
    }
    Ok(())
}
