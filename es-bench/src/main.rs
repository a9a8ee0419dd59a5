//! The `orders-v1` benchmark (`es-bench/WORKLOAD.md`): the framework (`es`) against plain
//! sqlx (`raw-sqlx`) on one PostgreSQL, side by side in every run.
//!
//! Standard output gets one JSON line per scenario and system (the median of the runs), in the
//! workload page's format; standard error gets the machine, the server version, per-run
//! figures and a table of medians and ratios. Every scenario of every system runs in a fresh
//! schema, dropped afterwards (also when the scenario fails), and checks its result: a wrong
//! result fails the run with a non-zero exit. See the README for what each scenario does.
// Printing the figures is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod domain;
mod framework;
mod raw;
mod report;
mod workload;

use std::ops::Range;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::framework::{Framework, Rebuild};
use crate::raw::Raw;
use crate::report::Figures;
use crate::workload::{STEPS_PER_ORDER, Scenario, Sizes, System, TASKS};

/// The orders-v1 benchmark: the es framework against plain sqlx on one PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// How many times every scenario runs; medians are reported [default: 3, or 1 with --quick]
    #[arg(long)]
    runs: Option<usize>,
    /// Scenarios to run, comma-separated (S4, S4p and S4b rebuild from S2's log, so S2's
    /// commands run before them even when S2 is not listed; S4p and S4b, the framework's
    /// variants of S4, are compared with raw-sqlx's S4, which then runs too) [default: all]
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
    scenario: Vec<Scenario>,
    /// Systems to run, comma-separated [default: both]
    #[arg(long, value_enum, value_delimiter = ',')]
    system: Vec<System>,
    /// A few dozen commands per scenario: proves the bench works and is correct (for CI)
    #[arg(long)]
    quick: bool,
    /// Cuts each of S1, S2, S3 and S5 into this many parts, which the systems run by turns, each
    /// part's first system alternating; a system's figure covers all its parts. 1: each system
    /// runs the scenario whole, one after the other. (The rebuilds and S6 run whole, in rounds.)
    #[arg(long, default_value_t = 10)]
    slices: usize,
    /// The PostgreSQL server; each scenario works in a fresh schema there
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// A scenario produced a wrong result.
    #[error("wrong result: {0}")]
    Incorrect(String),
    /// A framework command failed.
    #[error("command failed")]
    Command(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database.
    #[error("database error")]
    Sql(#[from] sqlx::Error),
    /// The framework's store.
    #[error("store error")]
    Backend(#[from] es_core::BackendError),
    /// Building the framework's application.
    #[error("registry error")]
    Registry(#[from] es_core::RegistryError),
    /// Loading an aggregate.
    #[error("load error")]
    Load(#[from] es_core::LoadError),
    /// Appending a batch.
    #[error("append error")]
    Append(#[from] es_core::AppendError),
    /// The projection runner.
    #[error("projection runner error")]
    Runner(#[from] es_core::RunnerError),
    /// Encoding an event.
    #[error("encode error")]
    Encode(#[from] es_core::codec::EncodeError),
    /// An invalid stream id.
    #[error("invalid stream id")]
    StreamId(#[from] es_core::InvalidStreamId),
    /// JSON.
    #[error("JSON error")]
    Json(#[from] serde_json::Error),
    /// A number out of range.
    #[error("number out of range")]
    Number(#[from] std::num::TryFromIntError),
    /// A task panicked or was cancelled.
    #[error("task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl BenchError {
    /// A wrong result, described.
    pub(crate) fn incorrect(what: impl Into<String>) -> Self {
        Self::Incorrect(what.into())
    }
}

/// The bench's result type.
pub(crate) type Result<T, E = BenchError> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", es_core::ErrorChain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs `run` on each of `entries`, `warm_up` untimed rounds and then `timed` (at least one)
/// timed ones. Each round runs every entry once: in order in the first round, and in the order
/// reversed before each round after it, so that a slow or fast spell of a shared machine falls
/// on all of them. Returns each entry's timed rounds' times in seconds, in `entries`' order.
async fn in_rounds<T, F, Fut>(
    entries: &[T],
    warm_up: usize,
    timed: usize,
    mut run: F,
) -> Result<Vec<Vec<f64>>>
where
    T: Copy,
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    let mut seconds = vec![Vec::new(); entries.len()];
    for round in 0..rounds(warm_up, timed) {
        let mut turns: Vec<_> = entries.iter().zip(&mut seconds).collect();
        if round % 2 == 1 {
            turns.reverse();
        }
        for (&entry, times) in turns {
            let elapsed = run(entry).await?;
            if round >= warm_up {
                times.push(elapsed.as_secs_f64());
            }
        }
    }
    Ok(seconds)
}

/// How many rounds [`in_rounds`] runs: the warm-up ones and at least one timed.
fn rounds(warm_up: usize, timed: usize) -> usize {
    warm_up + timed.max(1)
}

/// Scenarios that run in one schema, in order: S4, S4p and S4b rebuild from the log S2 wrote,
/// so S2 comes first (each rebuild into a fresh table). The variants' baseline is raw-sqlx's
/// S4, so selecting one runs that too. Which of them each system runs: [`Bench::runs`].
fn groups(selected: &[Scenario]) -> Vec<Vec<Scenario>> {
    let wants = |scenario| wanted(selected, scenario);
    let mut groups = Vec::new();
    if wants(Scenario::S1) {
        groups.push(vec![Scenario::S1]);
    }
    let rebuilds = [Scenario::S4, Scenario::S4p, Scenario::S4b];
    if wants(Scenario::S2) || rebuilds.into_iter().any(wants) {
        let mut group = vec![Scenario::S2];
        group.extend(rebuilds.into_iter().filter(|&scenario| wants(scenario)));
        groups.push(group);
    }
    if wants(Scenario::S3) {
        groups.push(vec![Scenario::S3]);
    }
    // S5x2's baseline is raw-sqlx's S5, which runs in the same group, just before it.
    if wants(Scenario::S5) || wants(Scenario::S5x2) {
        let mut group = vec![Scenario::S5];
        if wants(Scenario::S5x2) {
            group.push(Scenario::S5x2);
        }
        groups.push(group);
    }
    if wants(Scenario::S6) {
        groups.push(vec![Scenario::S6]);
    }
    groups
}

/// Whether `scenario`'s figure is reported: it was selected, or it is the baseline of one that
/// was (raw-sqlx's S4 for S4p and S4b).
fn wanted(selected: &[Scenario], scenario: Scenario) -> bool {
    selected
        .iter()
        .any(|&chosen| chosen == scenario || chosen.baseline() == scenario)
}

async fn run(args: Args) -> Result<()> {
    let sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario.clone()
    };
    let systems = if args.system.is_empty() {
        vec![System::Es, System::RawSqlx]
    } else {
        let mut systems = args.system.clone();
        systems.dedup();
        systems
    };

    let admin = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&args.database_url)
        .await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&admin)
        .await?;
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    eprintln!("cores: {cores}");
    eprintln!("postgresql: {version}");
    eprintln!(
        "runs: {runs}, sizes: {}, slices: {}",
        if args.quick {
            "quick"
        } else {
            "full (workload page)"
        },
        args.slices.max(1)
    );

    let bench = Bench {
        url: args.database_url,
        admin,
        sizes,
        slices: args.slices.max(1),
        selected: scenarios.clone(),
    };
    let mut figures = Figures::default();
    for run in 0..runs {
        // Alternate which system goes first, so neither always runs on a warmer server.
        let order: Vec<System> = if run % 2 == 0 {
            systems.clone()
        } else {
            systems.iter().rev().copied().collect()
        };
        for group in groups(&scenarios) {
            let mut this_run = bench.run_group(run, &order, &group).await?;
            this_run.retain(|&(scenario, _, _)| wanted(&scenarios, scenario));
            for &(scenario, system, value) in &this_run {
                eprintln!(
                    "run {}: {}",
                    run + 1,
                    report::json_line(scenario, system, value, sizes.n(scenario))
                );
                figures.record(scenario, system, value);
            }
            for &(scenario, system, es) in &this_run {
                if system != System::Es {
                    continue;
                }
                let raw = this_run
                    .iter()
                    .find(|&&(s, system, _)| s == scenario.baseline() && system == System::RawSqlx);
                if let Some(&(_, _, raw)) = raw {
                    figures.record_ratio(scenario, es, raw);
                }
            }
        }
    }
    for line in figures.json_lines(|scenario| sizes.n(scenario)) {
        println!("{line}");
    }
    eprint!("\n{}", figures.table());
    bench.admin.close().await;
    Ok(())
}

/// What every scenario needs: the server, a small pool for setup and checks, the sizes, how
/// finely the systems take turns, and the scenarios asked for.
struct Bench {
    url: String,
    admin: PgPool,
    sizes: Sizes,
    slices: usize,
    selected: Vec<Scenario>,
}

/// One system on one fresh schema.
enum Subject {
    Es(Framework),
    Raw(Raw),
}

/// One system's side of a group: its schema, its subject, and the orders its scenarios work on.
struct Side {
    system: System,
    schema: String,
    subject: Subject,
    /// S1's or S2's orders (S2's are the input of the rebuilds).
    orders: Vec<Uuid>,
    /// S3's long order or S5's contended order.
    order: Uuid,
}

impl Bench {
    /// Runs `group` for the systems of `order`, each in a fresh schema of its own with a pool
    /// of its own, always dropped afterwards; returns each scenario's figure per system.
    async fn run_group(
        &self,
        run: usize,
        order: &[System],
        group: &[Scenario],
    ) -> Result<Vec<(Scenario, System, f64)>> {
        let mut opened = Vec::new();
        let outcome = self.run_sides(run, order, group, &mut opened).await;
        let mut dropped = Ok(());
        for (schema, pool) in opened {
            // Do not wait forever for connections still checked out (a framework task that
            // outlives its scenario); the schema is dropped regardless.
            let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
            let result = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&self.admin)
            .await;
            if let Err(error) = result {
                dropped = Err(error);
            }
        }
        let figures = outcome?;
        dropped?;
        Ok(figures)
    }

    /// [`run_group`](Self::run_group) itself; every schema it creates is added to `opened`
    /// with its pool before anything can fail.
    async fn run_sides(
        &self,
        run: usize,
        order: &[System],
        group: &[Scenario],
        opened: &mut Vec<(String, PgPool)>,
    ) -> Result<Vec<(Scenario, System, f64)>> {
        let first = group.first().map_or("none", |scenario| scenario.id());
        let mut sides = Vec::new();
        for &system in order {
            if !group.iter().any(|&scenario| self.runs(system, scenario)) {
                continue;
            }
            let schema = format!(
                "esbench_{}_r{run}_{}_{}",
                std::process::id(),
                system.tag(),
                first.to_lowercase()
            );
            let pool = self.pool().await?;
            opened.push((schema.clone(), pool.clone()));
            let subject = match system {
                System::Es => Subject::Es(Framework::new(pool, &schema).await?),
                System::RawSqlx => Subject::Raw(Raw::new(pool, &schema).await?),
            };
            sides.push(Side {
                system,
                schema,
                subject,
                orders: Vec::new(),
                order: Uuid::nil(),
            });
        }
        let mut figures = Vec::new();
        let mut rebuilt = false;
        for &scenario in group {
            if scenario.is_rebuild() {
                // The rebuilds take their turns together, so that the variants' rebuilds lie
                // beside raw-sqlx's S4, their baseline.
                if !rebuilt {
                    figures.extend(self.rebuild_in_turns(&sides, group).await?);
                    rebuilt = true;
                }
                continue;
            }
            if scenario == Scenario::S6 {
                figures.extend(self.append_batches_in_turns(&sides).await?);
                continue;
            }
            let mut running: Vec<&mut Side> = sides
                .iter_mut()
                .filter(|side| self.runs(side.system, scenario))
                .collect();
            for side in &mut running {
                self.prepare(side, scenario).await?;
            }
            // The systems take turns part by part, and the first of each part alternates (the
            // turn order is reversed before every part but the first), so a slow or fast spell
            // of a shared machine falls on both.
            let mut turns: Vec<(&Side, Vec<Duration>)> =
                running.iter().map(|side| (&**side, Vec::new())).collect();
            let parts = workload::parts(self.total(scenario), self.slices);
            let part_count = parts.len();
            for (index, part) in parts.into_iter().enumerate() {
                if index > 0 {
                    turns.reverse();
                }
                for (side, times) in &mut turns {
                    times.extend(self.run_part(side, scenario, part.clone()).await?);
                }
            }
            // Back in the run's order, so figures are reported as before.
            if part_count.is_multiple_of(2) {
                turns.reverse();
            }
            for (side, times) in &turns {
                let value = self.finish(side, scenario, times).await?;
                figures.push((scenario, side.system, value));
            }
        }
        Ok(figures)
    }

    /// Whether `system` runs `scenario`: it was selected (or is the baseline of one that was),
    /// and the framework runs only what was selected (not S4 when just S4b was), plain sqlx no
    /// framework variant. S2 always runs: the rebuilds read its log.
    fn runs(&self, system: System, scenario: Scenario) -> bool {
        let selected = &self.selected;
        match system {
            System::Es => scenario == Scenario::S2 || selected.contains(&scenario),
            System::RawSqlx => !scenario.framework_only(),
        }
    }

    /// A pool of [`TASKS`] connections, all open before any clock starts.
    async fn pool(&self) -> Result<PgPool> {
        let pool = PgPoolOptions::new()
            .max_connections(u32::try_from(TASKS)?)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.url)
            .await?;
        let mut held = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            held.push(pool.acquire().await?);
        }
        drop(held);
        Ok(pool)
    }

    /// The units a scenario is cut into: timed orders (S1, S2), loads (S3), commands per task
    /// (S5). The rebuilds and S6 run in rounds, not cut: none.
    const fn total(&self, scenario: Scenario) -> usize {
        let sizes = &self.sizes;
        match scenario {
            Scenario::S1 => sizes.seq_orders,
            Scenario::S2 => sizes.par_orders,
            Scenario::S3 => sizes.long_loads,
            Scenario::S5 | Scenario::S5x2 => sizes.contention_per_task,
            Scenario::S4 | Scenario::S4p | Scenario::S4b | Scenario::S6 => 0,
        }
    }

    /// Untimed setup of a scenario on one side: its orders, S3's long order and its warm-up
    /// loads, S5's placed order.
    async fn prepare(&self, side: &mut Side, scenario: Scenario) -> Result<()> {
        match scenario {
            Scenario::S1 | Scenario::S2 => {
                // The warm-up orders come first in `orders`, so that every order keeps one
                // index (its items) in the commands and in the rebuilds' expected summary.
                let (timed, warm_up) = (self.total(scenario), self.sizes.warm_up_orders);
                side.orders = workload::order_ids(warm_up + timed);
                let (orders, warm_up) = (&side.orders, 0..warm_up);
                let _untimed = match (&side.subject, scenario) {
                    (Subject::Es(es), Scenario::S1) => es.append_seq(orders, warm_up).await?,
                    (Subject::Raw(raw), Scenario::S1) => raw.append_seq(orders, warm_up).await?,
                    (Subject::Es(es), _) => es.append_par(orders, warm_up).await?,
                    (Subject::Raw(raw), _) => raw.append_par(orders, warm_up).await?,
                };
            }
            Scenario::S3 => {
                side.order = Uuid::now_v7();
                let items = self.sizes.long_items;
                let warm_up = self.sizes.warm_up_loads;
                let _untimed = match &side.subject {
                    Subject::Es(es) => {
                        es.store_long(side.order, items).await?;
                        es.load_long(side.order, warm_up, items).await?
                    }
                    Subject::Raw(raw) => {
                        raw.store_long(side.order, items).await?;
                        raw.load_long(side.order, warm_up, items).await?
                    }
                };
            }
            Scenario::S5 | Scenario::S5x2 => {
                side.order = Uuid::now_v7();
                match &side.subject {
                    Subject::Es(es) => es.place(side.order).await?,
                    Subject::Raw(raw) => raw.place(side.order).await?,
                }
            }
            Scenario::S4 | Scenario::S4p | Scenario::S4b | Scenario::S6 => {}
        }
        Ok(())
    }

    /// Runs `part` of a scenario on one side; returns its time (S3: each load's).
    async fn run_part(
        &self,
        side: &Side,
        scenario: Scenario,
        part: Range<usize>,
    ) -> Result<Vec<Duration>> {
        let sizes = &self.sizes;
        let count = part.len();
        let (orders, order) = (&side.orders, side.order);
        // S1's and S2's timed orders come after their warm-up orders.
        let part = match scenario {
            Scenario::S1 | Scenario::S2 => {
                part.start + sizes.warm_up_orders..part.end + sizes.warm_up_orders
            }
            _ => part,
        };
        let one = |elapsed: Duration| vec![elapsed];
        Ok(match (&side.subject, scenario) {
            (Subject::Es(es), Scenario::S1) => one(es.append_seq(orders, part).await?),
            (Subject::Raw(raw), Scenario::S1) => one(raw.append_seq(orders, part).await?),
            (Subject::Es(es), Scenario::S2) => one(es.append_par(orders, part).await?),
            (Subject::Raw(raw), Scenario::S2) => one(raw.append_par(orders, part).await?),
            (Subject::Es(es), Scenario::S3) => es.load_long(order, count, sizes.long_items).await?,
            (Subject::Raw(raw), Scenario::S3) => {
                raw.load_long(order, count, sizes.long_items).await?
            }
            (Subject::Es(es), Scenario::S5) => one(es.contention(order, count).await?),
            (Subject::Raw(raw), Scenario::S5) => one(raw.contention(order, count).await?),
            (Subject::Es(es), Scenario::S5x2) => one(es.contention_two_apps(order, count).await?),
            (Subject::Raw(_), Scenario::S5x2) => {
                return Err(BenchError::incorrect("S5x2 is the framework's alone"));
            }
            (_, Scenario::S4 | Scenario::S4p | Scenario::S4b | Scenario::S6) => {
                return Err(BenchError::incorrect(format!(
                    "{scenario} runs in rounds, not cut into parts"
                )));
            }
        })
    }

    /// Checks a side's result of a scenario and returns its figure from the `times` of all
    /// its parts.
    async fn finish(&self, side: &Side, scenario: Scenario, times: &[Duration]) -> Result<f64> {
        let sizes = &self.sizes;
        let n = sizes.n(scenario);
        let schema = side.schema.as_str();
        let total: Duration = times.iter().sum();
        let per_second = n as f64 / total.as_secs_f64();
        match scenario {
            Scenario::S1 | Scenario::S2 => {
                // The warm-up orders' events are stored too. Counted from the sizes, not from
                // the orders the side ran, so that a run that skipped some fails.
                let orders = sizes.warm_up_orders + self.total(scenario);
                self.check_counts(schema, scenario, orders * STEPS_PER_ORDER, orders)
                    .await?;
                Ok(per_second)
            }
            Scenario::S3 => {
                self.check_counts(schema, scenario, n, 1).await?;
                let millis: Vec<f64> = times
                    .iter()
                    .map(|time| time.as_secs_f64() * 1_000.0)
                    .collect();
                report::median(&millis).ok_or_else(|| BenchError::incorrect("S3 measured no load"))
            }
            Scenario::S5 | Scenario::S5x2 => {
                let (units, version) = match &side.subject {
                    Subject::Es(es) => es.units_and_version(side.order).await?,
                    Subject::Raw(raw) => raw.units_and_version(side.order).await?,
                };
                let expected = u64::try_from(n)?;
                if units != expected || version != expected + 1 {
                    return Err(BenchError::incorrect(format!(
                        "{scenario} order holds {units} units at version {version}; expected {expected} units at version {}",
                        expected + 1
                    )));
                }
                // S5x2 runs in S5's schema, after S5's own order when the side ran S5 too.
                let orders = if scenario == Scenario::S5x2 && self.runs(side.system, Scenario::S5) {
                    2
                } else {
                    1
                };
                self.check_counts(schema, scenario, (n + 1) * orders, orders)
                    .await?;
                Ok(per_second)
            }
            Scenario::S4 | Scenario::S4p | Scenario::S4b | Scenario::S6 => Err(
                BenchError::incorrect(format!("{scenario} runs in rounds, not cut into parts")),
            ),
        }
    }

    /// The rebuilds of `group` (S4, S4p, S4b) on every side that runs them, each
    /// [`Sizes::rebuilds`] times after [`Sizes::warm_up_rebuilds`] untimed ones, by turns: the
    /// order of the rebuilds is reversed before each round but the first, as the parts of the
    /// other scenarios are. A rebuild's figure is the median of its timed rounds' times. Why: a
    /// rebuild takes 20 to 40 ms, so one per run measured the machine's spell more than the
    /// systems (S4b's per-run ratios 0.37 to 1.00 in one run of five). Why the warm-up: sqlx
    /// prepares a statement once per pooled connection, and its pool hands out the connection
    /// idle longest, so a run's first rebuilds ran on connections that had never prepared
    /// their statements (S4's first ten of sixteen rebuilds 36 to 44 ms, the last six 28 to
    /// 31; raw-sqlx's, with two statements, 16 to 20 and 14 to 16).
    async fn rebuild_in_turns(
        &self,
        sides: &[Side],
        group: &[Scenario],
    ) -> Result<Vec<(Scenario, System, f64)>> {
        let turns: Vec<(Scenario, &Side)> = group
            .iter()
            .filter(|scenario| scenario.is_rebuild())
            .flat_map(|&scenario| {
                sides
                    .iter()
                    .filter(move |side| self.runs(side.system, scenario))
                    .map(move |side| (scenario, side))
            })
            .collect();
        // A warm-up rebuild is checked like the others, only not timed.
        let seconds = in_rounds(
            &turns,
            self.sizes.warm_up_rebuilds,
            self.sizes.rebuilds,
            |(scenario, side)| self.project_all(side, scenario),
        )
        .await?;
        turns
            .into_iter()
            .zip(seconds)
            .map(|((scenario, side), seconds)| {
                let median = report::median(&seconds).ok_or_else(|| {
                    BenchError::incorrect(format!("{scenario} measured no rebuild"))
                })?;
                Ok((
                    scenario,
                    side.system,
                    self.sizes.n(scenario) as f64 / median,
                ))
            })
            .collect()
    }

    /// S6 on every side that runs it: [`Sizes::batch_rounds`] rounds of
    /// [`Sizes::batch_appends`] appends each, after [`Sizes::warm_up_batch_rounds`] untimed
    /// ones, by turns (the order reversed before each round but the first). A side's figure is
    /// its median round's. Why rounds: a round takes about 0.1 s, and a stall of the machine's
    /// disk adds 30 to 80 ms to whichever append meets it (about one in three hundred), so with
    /// one round per run S6's per-run ratios spread from 0.60 to 1.29. Why the warm-up: as for
    /// the rebuilds, a connection's first appends parse the statement and plan it anew (the
    /// first twenty of a run's appends took twice as long as the rest, on both sides), which a
    /// running service's connections have long done.
    async fn append_batches_in_turns(
        &self,
        sides: &[Side],
    ) -> Result<Vec<(Scenario, System, f64)>> {
        let scenario = Scenario::S6;
        let sizes = &self.sizes;
        let turns: Vec<&Side> = sides
            .iter()
            .filter(|side| self.runs(side.system, scenario))
            .collect();
        let (appends, events) = (sizes.batch_appends, sizes.batch_events);
        let seconds = in_rounds(
            &turns,
            sizes.warm_up_batch_rounds,
            sizes.batch_rounds,
            |side: &Side| async move {
                match &side.subject {
                    Subject::Es(es) => es.append_batch(appends, events).await,
                    Subject::Raw(raw) => raw.append_batch(appends, events).await,
                }
            },
        )
        .await?;
        let rounds = rounds(sizes.warm_up_batch_rounds, sizes.batch_rounds);
        let mut figures = Vec::with_capacity(turns.len());
        for (side, seconds) in turns.into_iter().zip(seconds) {
            // Every round, warm-up or timed, appended to streams of its own.
            self.check_counts(
                &side.schema,
                scenario,
                sizes.n(scenario) * rounds,
                sizes.batch_appends * rounds,
            )
            .await?;
            let median = report::median(&seconds)
                .ok_or_else(|| BenchError::incorrect(format!("{scenario} measured no round")))?;
            figures.push((scenario, side.system, sizes.n(scenario) as f64 / median));
        }
        Ok(figures)
    }

    /// One rebuild of S4, S4p or S4b on one side: rebuilds `order_summary` from the log S2 wrote
    /// into a fresh table, checks it, and returns the time it took.
    async fn project_all(&self, side: &Side, scenario: Scenario) -> Result<Duration> {
        let n = self.sizes.n(scenario);
        let schema = side.schema.as_str();
        // A fresh table for each rebuild (a run rebuilds several times, the three rebuilds in
        // the same schema, by turns). The log gets its
        // statistics first, untimed, for both systems: a production log has them (autovacuum
        // analyzes a table within a minute of a large change), and the bench starts its
        // rebuilds a moment after S2 wrote the log.
        let table = format!("\"{schema}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {table}.order_summary; {}; ANALYZE {table}.events;",
            workload::summary_table_ddl(&table)
        )))
        .execute(&self.admin)
        .await?;
        let elapsed = match &side.subject {
            Subject::Es(es) => es.project_all(schema, n, Rebuild::of(scenario)?).await?,
            Subject::Raw(_) if scenario.framework_only() => {
                return Err(BenchError::incorrect(format!(
                    "{scenario} is the framework's variant of S4; raw-sqlx runs S4"
                )));
            }
            Subject::Raw(raw) => raw.project_all().await?,
        };
        let rows = raw::summary_rows(&self.admin, schema).await?;
        let expected = workload::expected_summary(&side.orders);
        if rows != expected {
            let wrong = rows
                .iter()
                .zip(&expected)
                .find(|(row, expected)| row != expected);
            return Err(BenchError::incorrect(format!(
                "{scenario} summary has {} rows, expected {}; first difference: {wrong:?}",
                rows.len(),
                expected.len()
            )));
        }
        Ok(elapsed)
    }

    /// Fails unless `schema` holds exactly `events` events in `streams` streams.
    async fn check_counts(
        &self,
        schema: &str,
        scenario: Scenario,
        events: usize,
        streams: usize,
    ) -> Result<()> {
        let (found_events, found_streams) = raw::event_counts(&self.admin, schema).await?;
        if (found_events, found_streams) != (i64::try_from(events)?, i64::try_from(streams)?) {
            return Err(BenchError::incorrect(format!(
                "{scenario} stored {found_events} events in {found_streams} streams; expected {events} in {streams}"
            )));
        }
        Ok(())
    }
}
