//! [`ErrorChain`]: an error and its causes on one line.

use std::fmt;

/// Displays an error followed by each of its [`source`](std::error::Error::source)s, joined
/// with `: ` ("append to stream `order-1`: connection refused"), for logs and messages where
/// the outermost error alone would hide the cause.
///
/// ```
/// use es_core::ErrorChain;
///
/// let io = std::io::Error::other("connection refused");
/// let error = es_core::BackendError::new("mydb", es_core::BackendErrorKind::Unavailable, "append")
///     .with_source(io);
/// assert_eq!(ErrorChain(&error).to_string(), format!("{error}: connection refused"));
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
