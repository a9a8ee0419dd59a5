//! "Did you mean ...?" for misspelt attribute keys.

/// The candidate closest to `input`, if it is close enough to be what the user meant;
/// `spelling` gives each candidate's text.
///
/// Closeness is the optimal-string-alignment distance (edits, with a swap of two neighbours
/// counting as one edit, so `evnets` is one edit from `events`); at most a third of the
/// longer word may differ, and never less than one edit is allowed. On a tie the earlier
/// candidate wins.
pub(crate) fn closest<T: Copy>(
    input: &str,
    candidates: &[T],
    spelling: impl Fn(T) -> &'static str,
) -> Option<T> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|&candidate| (candidate, spelling(candidate)))
        .map(|(candidate, text)| (distance(&input, text), text, candidate))
        .filter(|&(d, text, _)| d <= (input.chars().count().max(text.len()) / 3).max(1))
        .min_by_key(|&(d, ..)| d)
        .map(|(.., candidate)| candidate)
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
    fn closest_is_within_a_third_and_the_first_on_a_tie() {
        let candidates = ["name", "same", "version"];
        let closest = |input| closest(input, &candidates, |c| c);
        assert_eq!(closest("nam"), Some("name"));
        // One edit from both `name` and `same`: the earlier candidate.
        assert_eq!(closest("fame"), Some("name"));
        assert_eq!(closest("VERSOIN"), Some("version"));
        // Two edits in four letters is more than a third.
        assert_eq!(closest("nxmx"), None);
    }
}
