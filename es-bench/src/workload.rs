//! The `orders-v1` workload, independent of who runs it: scenario ids, sizes, the commands each
//! order receives and the read model they must produce.
//!
//! Both systems take their input from here, so they do exactly the same work; nothing in this
//! module touches the framework or the database.

use std::fmt;
use std::ops::Range;

use uuid::Uuid;

/// Tasks (and pool connections) of the parallel scenarios.
pub(crate) const TASKS: usize = 16;

/// One scenario of the workload page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// `append_seq`: one task, each order Place, AddItem x3, Pay, Ship.
    #[value(name = "S1")]
    S1,
    /// `append_par`: the same commands from 16 tasks, each on its own orders.
    #[value(name = "S2")]
    S2,
    /// `load_long`: rehydrate an order of 10,001 events.
    #[value(name = "S3")]
    S3,
    /// `project_all`: rebuild `order_summary` from the log S2 wrote, with the framework's
    /// table projection: handlers change rows in memory, `TableRows` loads and writes each
    /// batch's rows in bulk.
    #[value(name = "S4")]
    S4,
    /// `project_all`, the framework's per-event variant: the same rebuild by a projection whose
    /// handlers each run their own `INSERT` or `UPDATE`. Framework only; its ratio is against
    /// raw-sqlx's S4.
    #[value(name = "S4p")]
    S4p,
    /// `project_all`, the framework's bulk variant: the same rebuild by a projection whose
    /// handlers fold each batch into per-order deltas and whose end-of-batch hook writes them
    /// in one statement. Framework only; its ratio is against raw-sqlx's S4.
    #[value(name = "S4b")]
    S4b,
    /// `contention`: 16 tasks add items to one order, retrying on conflicts.
    #[value(name = "S5")]
    S5,
    /// `contention`, the framework from two application instances (8 tasks each), as two
    /// processes would run it: commands queue within each, and the two conflict. Framework
    /// only; its ratio is against raw-sqlx's S5.
    #[value(name = "S5x2")]
    S5x2,
    /// `append_batch`: 100 events per append call, to fresh streams.
    #[value(name = "S6")]
    S6,
}

impl Scenario {
    /// Every scenario, in the order the workload page lists them.
    pub(crate) const ALL: [Self; 9] = [
        Self::S1,
        Self::S2,
        Self::S3,
        Self::S4,
        Self::S4p,
        Self::S4b,
        Self::S5,
        Self::S5x2,
        Self::S6,
    ];

    /// The id printed in the JSON lines (`"S1"`).
    pub(crate) const fn id(self) -> &'static str {
        match self {
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::S3 => "S3",
            Self::S4 => "S4",
            Self::S4p => "S4p",
            Self::S4b => "S4b",
            Self::S5 => "S5",
            Self::S5x2 => "S5x2",
            Self::S6 => "S6",
        }
    }

    /// The workload page's name of the scenario.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::S1 => "append_seq",
            Self::S2 => "append_par",
            Self::S3 => "load_long",
            Self::S4 => "project_all",
            Self::S4p => "project_per_event",
            Self::S4b => "project_bulk",
            Self::S5 => "contention",
            Self::S5x2 => "contention_two_apps",
            Self::S6 => "append_batch",
        }
    }

    /// The unit of the figure.
    pub(crate) const fn unit(self) -> &'static str {
        match self {
            Self::S1 | Self::S2 | Self::S5 | Self::S5x2 => "commands/s",
            Self::S3 => "ms",
            Self::S4 | Self::S4p | Self::S4b | Self::S6 => "events/s",
        }
    }

    /// Whether a smaller figure is better (a time rather than a rate).
    pub(crate) const fn lower_is_better(self) -> bool {
        matches!(self, Self::S3)
    }

    /// The scenario whose raw-sqlx figure this one is compared with: itself, except for a
    /// framework variant, which has no baseline of its own (S4p and S4b against S4: plain sqlx
    /// has one way to rebuild; S5x2 against S5: plain sqlx's tasks share nothing either way).
    pub(crate) const fn baseline(self) -> Self {
        match self {
            Self::S4p | Self::S4b => Self::S4,
            Self::S5x2 => Self::S5,
            other => other,
        }
    }

    /// Whether only the framework runs it (a variant of a workload scenario).
    pub(crate) const fn framework_only(self) -> bool {
        matches!(self, Self::S4p | Self::S4b | Self::S5x2)
    }

    /// Whether it rebuilds a read model from S2's log (S4, S4p, S4b) rather than being cut
    /// into parts.
    pub(crate) const fn is_rebuild(self) -> bool {
        matches!(self, Self::S4 | Self::S4p | Self::S4b)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub(crate) enum System {
    /// The framework: es-core's command path and projection runner on es-postgres.
    #[value(name = "es")]
    Es,
    /// Plain sqlx on the same table shape, doing the least work each scenario allows.
    #[value(name = "raw-sqlx")]
    RawSqlx,
}

impl System {
    /// The name printed in the JSON lines.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::RawSqlx => "raw-sqlx",
        }
    }

    /// A short tag for schema names.
    pub(crate) const fn tag(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::RawSqlx => "raw",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much work each scenario does: the workload page's sizes, or a few dozen commands each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    /// S1: orders, six commands each.
    pub(crate) seq_orders: usize,
    /// S2 (and so S4, S4p and S4b): orders, six commands each, spread over [`TASKS`] tasks.
    pub(crate) par_orders: usize,
    /// S3: `ItemAdded` events after the `OrderPlaced`.
    pub(crate) long_items: usize,
    /// S3: full loads measured.
    pub(crate) long_loads: usize,
    /// S3: untimed loads before those, six per pool connection. PostgreSQL plans a prepared
    /// statement afresh for its first five executions on a connection and then settles on a
    /// generic plan, and the pool hands its connections out in turn: so every timed load runs
    /// on the plan a running service's loads get (for both systems, an ordered index scan).
    pub(crate) warm_up_loads: usize,
    /// S5: `AddItem` commands per task.
    pub(crate) contention_per_task: usize,
    /// S6: append calls per round.
    pub(crate) batch_appends: usize,
    /// S6: events per append call.
    pub(crate) batch_events: usize,
    /// S4, S4p and S4b: rebuilds of the read model per run, taken in turns by the systems; the
    /// figure is the median rebuild's.
    pub(crate) rebuilds: usize,
    /// S4, S4p and S4b: untimed rebuilds before those, in the same turns, so that the pool's
    /// connections have prepared the rebuilds' statements, as a running service's have.
    pub(crate) warm_up_rebuilds: usize,
    /// S1 and S2: untimed orders before the timed ones, run the same way (S1 by one task, S2
    /// by [`TASKS`]), so that the pool's connections have prepared and planned the command
    /// path's statements, as a running service's have. S2's are in the log S4 rebuilds.
    pub(crate) warm_up_orders: usize,
    /// S6: rounds of [`batch_appends`](Self::batch_appends) appends per run, taken in turns by
    /// the systems; the figure is the median round's.
    pub(crate) batch_rounds: usize,
    /// S6: untimed rounds before those, in the same turns, for the reason of
    /// [`warm_up_rebuilds`](Self::warm_up_rebuilds).
    pub(crate) warm_up_batch_rounds: usize,
}

impl Sizes {
    /// The sizes of the workload page.
    pub(crate) const FULL: Self = Self {
        seq_orders: 500,
        par_orders: 2_000,
        long_items: 10_000,
        long_loads: 20,
        warm_up_loads: 6 * TASKS,
        contention_per_task: 50,
        batch_appends: 100,
        batch_events: 100,
        rebuilds: 5,
        warm_up_rebuilds: 6,
        warm_up_orders: 32,
        batch_rounds: 5,
        warm_up_batch_rounds: 2,
    };

    /// A few dozen commands per scenario: proves the bench works and checks its results.
    pub(crate) const QUICK: Self = Self {
        seq_orders: 6,
        par_orders: 16,
        long_items: 200,
        long_loads: 3,
        warm_up_loads: 1,
        contention_per_task: 3,
        batch_appends: 3,
        batch_events: 100,
        rebuilds: 1,
        warm_up_rebuilds: 0,
        warm_up_orders: 0,
        batch_rounds: 1,
        warm_up_batch_rounds: 0,
    };

    /// The figure's `n`: commands or events measured (S3: events per load).
    pub(crate) const fn n(&self, scenario: Scenario) -> usize {
        match scenario {
            Scenario::S1 => self.seq_orders * STEPS_PER_ORDER,
            Scenario::S2 => self.par_orders * STEPS_PER_ORDER,
            // The rebuilds apply S2's whole log, its warm-up orders' events included.
            Scenario::S4 | Scenario::S4p | Scenario::S4b => {
                (self.par_orders + self.warm_up_orders) * STEPS_PER_ORDER
            }
            Scenario::S3 => self.long_items + 1,
            Scenario::S5 | Scenario::S5x2 => self.contention_per_task * TASKS,
            Scenario::S6 => self.batch_appends * self.batch_events,
        }
    }
}

/// Commands (and events) per order in S1 and S2.
pub(crate) const STEPS_PER_ORDER: usize = 6;

/// One command of the workload, before either system turns it into its own type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `PlaceOrder`.
    Place {
        /// The customer.
        customer_id: String,
    },
    /// `AddItem`.
    Add(Item),
    /// `PayOrder` with the order's total.
    Pay {
        /// The total.
        amount_cents: u64,
    },
    /// `ShipOrder`.
    Ship,
}

/// The fields of `AddItem` / `ItemAdded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    /// The SKU.
    pub(crate) sku: String,
    /// Units (at least 1).
    pub(crate) quantity: u32,
    /// Price of one unit.
    pub(crate) unit_price_cents: u64,
}

/// The three items of order number `index` (varied so the summary check means something).
fn items(index: usize) -> [Item; 3] {
    let base = u32::try_from(index % 4).unwrap_or(0);
    let price = u64::try_from(index % 7).unwrap_or(0);
    [0_u32, 1, 2].map(|k| Item {
        sku: format!("sku-{k}"),
        quantity: base + k + 1,
        unit_price_cents: 250 + 100 * u64::from(k) + price,
    })
}

/// The six commands order number `index` receives in S1 and S2, in order.
pub(crate) fn order_steps(index: usize) -> [Step; STEPS_PER_ORDER] {
    let [a, b, c] = items(index);
    let amount_cents = [&a, &b, &c]
        .iter()
        .map(|item| u64::from(item.quantity) * item.unit_price_cents)
        .sum();
    [
        Step::Place {
            customer_id: format!("customer-{index}"),
        },
        Step::Add(a),
        Step::Add(b),
        Step::Add(c),
        Step::Pay { amount_cents },
        Step::Ship,
    ]
}

/// The `i`-th of S3's items.
pub(crate) fn long_item(i: usize) -> Item {
    Item {
        sku: format!("sku-{}", i % 5),
        quantity: 1,
        unit_price_cents: 100,
    }
}

/// The item S5's tasks add, one unit at a time.
pub(crate) fn contended_item() -> Item {
    Item {
        sku: "sku-contended".to_owned(),
        quantity: 1,
        unit_price_cents: 100,
    }
}

/// The orders of S1 or S2: a fresh id for each order number.
pub(crate) fn order_ids(count: usize) -> Vec<Uuid> {
    (0..count).map(|_| Uuid::now_v7()).collect()
}

/// The stream id both systems give an order (`order-{uuid}`, the framework's format).
pub(crate) fn stream_id(order_id: Uuid) -> String {
    format!("order-{order_id}")
}

/// One row of the `order_summary` read model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    /// The order id (the stream id without `order-`).
    pub(crate) order_id: String,
    /// `placed`, `paid`, `shipped` or `cancelled`.
    pub(crate) status: String,
    /// Units over all lines.
    pub(crate) item_count: i64,
    /// Total in cents.
    pub(crate) total_cents: i64,
}

/// The summary S2's commands must produce, sorted by order id.
pub(crate) fn expected_summary(order_ids: &[Uuid]) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = order_ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let items = items(index);
            SummaryRow {
                order_id: id.to_string(),
                status: "shipped".to_owned(),
                item_count: items.iter().map(|item| i64::from(item.quantity)).sum(),
                total_cents: items
                    .iter()
                    .map(|item| {
                        i64::from(item.quantity)
                            * i64::try_from(item.unit_price_cents).unwrap_or(i64::MAX)
                    })
                    .sum(),
            }
        })
        .collect();
    rows.sort();
    rows
}

/// The read model's table; the same for both systems, created before the clock starts.
pub(crate) fn summary_table_ddl(quoted_schema: &str) -> String {
    format!(
        "CREATE TABLE {quoted_schema}.order_summary (
            order_id    TEXT PRIMARY KEY,
            status      TEXT NOT NULL,
            item_count  BIGINT NOT NULL,
            total_cents BIGINT NOT NULL
        )"
    )
}

/// Which orders of `part` task `task` of [`TASKS`] works on: every `TASKS`-th, starting at
/// the part's `task`-th.
pub(crate) fn task_orders(task: usize, part: Range<usize>) -> impl Iterator<Item = usize> {
    (part.start.saturating_add(task)..part.end).step_by(TASKS)
}

/// `total` units of work (orders, loads, commands per task, appends) cut into `slices`
/// contiguous parts as even as can be (fewer when there are fewer units), in order.
pub(crate) fn parts(total: usize, slices: usize) -> Vec<Range<usize>> {
    let slices = slices.clamp(1, total.max(1));
    (0..slices)
        .map(|slice| total * slice / slices..total * (slice + 1) / slices)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_unit_once_in_order() {
        for (total, slices) in [
            (500, 10),
            (2_000, 10),
            (20, 10),
            (3, 10),
            (7, 3),
            (0, 10),
            (5, 0),
        ] {
            let parts = parts(total, slices);
            let flat: Vec<usize> = parts.iter().cloned().flatten().collect();
            assert_eq!(flat, (0..total).collect::<Vec<_>>(), "{total} in {slices}");
            assert!(parts.len() <= slices.max(1));
            let sizes: Vec<usize> = parts.iter().map(ExactSizeIterator::len).collect();
            let (least, most) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                most.zip(least)
                    .is_none_or(|(most, least)| most - least <= 1),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn the_tasks_share_a_part_without_overlap() {
        let part = 200..400;
        let mut seen: Vec<usize> = (0..TASKS)
            .flat_map(|task| task_orders(task, part.clone()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, part.collect::<Vec<_>>());
    }
}
