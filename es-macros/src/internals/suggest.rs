//! "Did you mean ...?" for misspelt attribute keys.

/// The candidate closest to `input`, if it is close enough to be what the user meant.
///
/// Closeness is the optimal-string-alignment distance (edits, with a swap of two neighbours
/// counting as one edit, so `evnets` is one edit from `events`); at most a third of the
/// longer word may differ, and never less than one edit is allowed.
pub(crate) fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|&candidate| (distance(&input, candidate), candidate))
        .filter(|&(d, candidate)| d <= (input.chars().count().max(candidate.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance between `a` and `b`, by characters.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows of the dynamic-programming table: two back (for swaps), one back, and the current.
    let mut before: Vec<usize> = (0..=b.len()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let at = |row: &[usize], j: usize| row.get(j).copied().unwrap_or(usize::MAX - 1);
    for (i, &ca) in a.iter().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitute = at(&prev, j) + usize::from(ca != cb);
            let delete = at(&prev, j + 1) + 1;
            let insert = at(&row, j) + 1;
            let mut best = substitute.min(delete).min(insert);
            let swapped = i.checked_sub(1).and_then(|k| a.get(k)) == Some(&cb)
                && j.checked_sub(1).and_then(|k| b.get(k)) == Some(&ca);
            if swapped {
                best = best.min(j.checked_sub(1).map_or(usize::MAX - 1, |k| at(&before, k)) + 1);
            }
            row.push(best);
        }
        before = std::mem::replace(&mut prev, row);
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{closest, distance};

    const AGGREGATE: &[&str] = &[
        "name",
        "error",
        "events",
        "commands",
        "async_commands",
        "services",
        "snapshot",
        "crate",
    ];

    #[test]
    fn distance_table() {
        let cases = [
            ("", "", 0),
            ("a", "", 1),
            ("", "abc", 3),
            ("events", "events", 0),
            ("evnets", "events", 1),
            ("event", "events", 1),
            ("verison", "version", 1),
            ("kitten", "sitting", 3),
            ("ab", "ba", 1),
            ("ça", "ca", 1),
        ];
        for (a, b, expected) in cases {
            assert_eq!(distance(a, b), expected, "distance({a:?}, {b:?})");
            assert_eq!(distance(b, a), expected, "distance({b:?}, {a:?})");
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("evnets", Some("events")),
            ("event", Some("events")),
            ("Events", Some("events")),
            ("comands", Some("commands")),
            ("command", Some("commands")),
            ("async_command", Some("async_commands")),
            ("asynccommands", Some("async_commands")),
            ("service", Some("services")),
            ("snapshots", Some("snapshot")),
            ("eror", Some("error")),
            ("errors", Some("error")),
            ("nmae", Some("name")),
            ("krate", Some("crate")),
            ("x", None),
            ("version", None),
            ("completely_unrelated", None),
        ];
        for (input, expected) in cases {
            assert_eq!(closest(input, AGGREGATE), expected, "closest({input:?})");
        }
    }
}
