//! What the bench prints: the workload page's JSON lines on standard output, a table of
//! medians and ratios on standard error.

use std::collections::BTreeMap;

use crate::workload::{Scenario, System};

/// The workload's name in every JSON line.
const WORKLOAD: &str = "orders-v1";

/// The ratio (ours / plain; plain / ours for times) each scenario aims at.
const fn target(scenario: Scenario) -> f64 {
    match scenario {
        Scenario::S1 | Scenario::S2 => 0.95,
        Scenario::S3 | Scenario::S5 | Scenario::S5x2 | Scenario::S6 => 0.90,
        Scenario::S4 | Scenario::S4p | Scenario::S4b => 0.50,
    }
}

/// Every figure measured, by scenario and system, one per run (`None` where a run skipped it).
#[derive(Debug, Default)]
pub(crate) struct Figures {
    values: BTreeMap<(Scenario, System), Vec<f64>>,
    ratios: BTreeMap<Scenario, Vec<f64>>,
}

impl Figures {
    /// Records one run's figure.
    pub(crate) fn record(&mut self, scenario: Scenario, system: System, value: f64) {
        self.values
            .entry((scenario, system))
            .or_default()
            .push(value);
    }

    /// Records the ratio of one run, once both systems ran it.
    pub(crate) fn record_ratio(&mut self, scenario: Scenario, es: f64, raw: f64) {
        let ratio = if scenario.lower_is_better() {
            raw / es
        } else {
            es / raw
        };
        self.ratios.entry(scenario).or_default().push(ratio);
    }

    /// The median figure of `system` in `scenario`.
    pub(crate) fn median(&self, scenario: Scenario, system: System) -> Option<f64> {
        self.values
            .get(&(scenario, system))
            .and_then(|values| median(values))
    }

    /// The JSON lines: one per scenario and system, with the median of the runs.
    pub(crate) fn json_lines(&self, n: impl Fn(Scenario) -> usize) -> Vec<String> {
        self.values
            .keys()
            .filter_map(|&(scenario, system)| {
                let value = self.median(scenario, system)?;
                Some(json_line(scenario, system, value, n(scenario)))
            })
            .collect()
    }

    /// The table of medians and ratios.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "{:<4} {:<19} {:<11} {:>12} {:>12} {:>8} {:>7}  per-run ratios\n",
            "", "scenario", "unit", "es", "raw-sqlx", "ratio", "target"
        );
        let scenarios: std::collections::BTreeSet<Scenario> =
            self.values.keys().map(|(scenario, _)| *scenario).collect();
        for scenario in scenarios {
            let show = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), format_value);
            let ratios = self.ratios.get(&scenario);
            let ratio = ratios
                .and_then(|ratios| median(ratios))
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"));
            let per_run = ratios.map_or_else(String::new, |ratios| {
                ratios
                    .iter()
                    .map(|ratio| format!("{ratio:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            out.push_str(&format!(
                "{:<4} {:<19} {:<11} {:>12} {:>12} {:>8} {:>7.2}  {per_run}\n",
                scenario.id(),
                scenario.name(),
                scenario.unit(),
                show(self.median(scenario, System::Es)),
                show(self.median(scenario.baseline(), System::RawSqlx)),
                ratio,
                target(scenario),
            ));
        }
        out.push_str(
            "ratio: median over runs of es / raw-sqlx (S3, a time: raw-sqlx / es); 1.00 = as fast as plain sqlx\n",
        );
        if self
            .values
            .keys()
            .any(|(scenario, _)| scenario.framework_only())
        {
            out.push_str(
                "S4p, S4b: the framework's variants of S4 (per-event statements; hand-written end-of-batch bulk upsert); their raw-sqlx column and ratio are raw-sqlx's S4 of the same run\n\
                 S5x2: S5 from two application instances (as two processes), 8 tasks each; its raw-sqlx column and ratio are raw-sqlx's S5 of the same run\n",
            );
        }
        out
    }
}

/// One line of the workload page's output format.
pub(crate) fn json_line(scenario: Scenario, system: System, value: f64, n: usize) -> String {
    format!(
        r#"{{"workload":"{WORKLOAD}","system":"{}","scenario":"{}","value":{},"unit":"{}","n":{n}}}"#,
        system.name(),
        scenario.id(),
        format_value(value),
        scenario.unit(),
    )
}

/// Rates with one decimal, times (small numbers) with three.
fn format_value(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.1}")
    }
}

/// The median (mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        len if len % 2 == 1 => sorted.get(middle).copied(),
        _ => Some((sorted.get(middle - 1)? + sorted.get(middle)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn json_line_has_the_workload_format() {
        assert_eq!(
            json_line(Scenario::S1, System::RawSqlx, 1234.54, 3000),
            r#"{"workload":"orders-v1","system":"raw-sqlx","scenario":"S1","value":1234.5,"unit":"commands/s","n":3000}"#
        );
    }
}
