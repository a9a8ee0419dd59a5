//! Rendering user tokens inside messages and doc comments.

use quote::ToTokens;

/// Tokens as the user would write them: `crate::events::OrderPaid`, `Vec<u8>`, not
/// `crate :: events :: OrderPaid`.
pub(crate) fn tokens(tokens: &impl ToTokens) -> String {
    let spaced = tokens.to_token_stream().to_string();
    let mut out = String::with_capacity(spaced.len());
    let mut chars = spaced.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let before = out.chars().last();
            let after = chars.peek().copied();
            let glue = matches!(before, Some(':' | '<' | '&' | '(' | '[' | '!' | '-' | '#'))
                || matches!(after, Some(':' | '<' | '>' | ',' | ')' | ']' | '(' | '!'));
            if glue {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::tokens;

    #[test]
    fn renders_paths_and_types() {
        assert_eq!(
            tokens(&quote!(crate::events::OrderPaid)),
            "crate::events::OrderPaid"
        );
        assert_eq!(tokens(&quote!(::es_core)), "::es_core");
        assert_eq!(tokens(&quote!(Vec<u8>)), "Vec<u8>");
        assert_eq!(tokens(&quote!(Map<K, V>)), "Map<K, V>");
        assert_eq!(tokens(&quote!(&Foo)), "&Foo");
        assert_eq!(tokens(&quote!(foo())), "foo()");
        assert_eq!(tokens(&quote!(-1)), "-1");
    }
}
