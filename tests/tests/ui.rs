//! The macros as users meet them: programs that must compile and run (`ui/pass`), and one
//! program per mistake (`ui/fail/<macro>`) with the compiler output its author will read.
//!
//! The `.stderr` files hold the compiler's exact words, so they belong to one toolchain, the
//! one named in `ui/RUSTC_VERSION`. On any other, this test fails (it never skips) and says
//! how to re-bless.

use std::path::Path;
use std::process::Command;

#[test]
fn ui() {
    check_toolchain();
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*/*.rs");
}

/// Fails unless `rustc -V` (the compiler cargo runs, `$RUSTC` if set) is the recorded one.
fn check_toolchain() {
    let recorded_at = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/RUSTC_VERSION");
    let recorded = std::fs::read_to_string(&recorded_at)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", recorded_at.display()));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-V")
        .output()
        .unwrap_or_else(|error| panic!("cannot run `{} -V`: {error}", rustc.display()));
    let running = String::from_utf8_lossy(&output.stdout);
    let (running, recorded) = (running.trim(), recorded.trim());
    assert!(
        running == recorded,
        "\n\nThe UI test's expected compiler output was recorded with `{recorded}`, \
         but this is `{running}`.\n\
         Compiler messages change between releases, so the .stderr files must be re-blessed:\n\n    \
         TRYBUILD=overwrite cargo test -p es-tests --test ui\n    \
         rustc -V > tests/ui/RUSTC_VERSION\n\n\
         then review every changed .stderr (`git diff tests/ui`) as a user would read it, \
         and fix a macro's message if it no longer says what to write.\n"
    );
}
