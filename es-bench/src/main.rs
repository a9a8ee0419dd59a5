//! The orders-v1 benchmark (work in progress).

fn main() {}
