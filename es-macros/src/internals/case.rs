//! Default stable names: a Rust type name in `snake_case`.

/// `OrderPaid` -> `order_paid`, `HTTPRequest` -> `http_request`, `OrderV2` -> `order_v2`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or a digit, and at the
/// last capital of an acronym followed by a lowercase letter. Digits stay with the word before
/// them. Existing underscores are kept.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_uppercase() {
            out.push(c);
            continue;
        }
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let starts_word = prev.is_some_and(|p| {
            p.is_lowercase()
                || p.is_numeric()
                || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
        });
        if starts_word {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_table() {
        let cases = [
            ("OrderPaid", "order_paid"),
            ("Order", "order"),
            ("HTTPRequest", "http_request"),
            ("OrderV2", "order_v2"),
            ("Item2Added", "item2_added"),
            ("Sha256Hash", "sha256_hash"),
            ("ABC", "abc"),
            ("A", "a"),
            ("", ""),
            ("already_snake", "already_snake"),
            ("Mixed_Case", "mixed_case"),
            ("_Leading", "_leading"),
            ("Ünïcode", "ünïcode"),
            ("OrderÉvent", "order_évent"),
            ("IOError", "io_error"),
        ];
        for (input, expected) in cases {
            assert_eq!(snake_case(input), expected, "snake_case({input:?})");
        }
    }

    #[test]
    fn snake_case_is_idempotent() {
        for name in ["OrderPaid", "HTTPRequest", "OrderV2", "Item2Added"] {
            let once = snake_case(name);
            assert_eq!(snake_case(&once), once);
        }
    }
}
