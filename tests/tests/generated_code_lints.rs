//! Generated code under the strictest lints a user may set: `clippy::pedantic` (checked by CI's
//! `cargo clippy --all-targets -- -D warnings`), `missing_docs`, `unsafe_code`, and with the
//! prelude's `Result`, `Option`, `Vec`, `Box`, `Ok`, `Err`, `Some` and `None` shadowed.
#![deny(warnings, missing_docs, unsafe_code, clippy::pedantic)]
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code

/// User types that shadow the prelude, which generated code must not rely on.
pub mod shadows {
    /// Shadows `Result`.
    pub struct Result;
    /// Shadows `Option`.
    pub struct Option;
    /// Shadows `Vec`.
    pub struct Vec;
    /// Shadows `Box`.
    pub struct Box;
    /// Shadows `Ok`, `Err`, `Some` and `None`.
    pub enum Shadow {
        /// Shadows `Ok`.
        Ok,
        /// Shadows `Err`.
        Err,
        /// Shadows `Some`.
        Some,
        /// Shadows `None`.
        None,
    }
}

/// The domain, written with the shadows in scope.
pub mod domain {
    #[allow(unused_imports)]
    use super::shadows::Shadow::{Err, None, Ok, Some};
    #[allow(unused_imports)]
    use super::shadows::{Box, Option, Result, Vec};
    use es_core::{
        Aggregate, Apply, EventEnvelope, Events, Handle, HandleAsync, HandlerError, Project,
        Projection, Reset, event,
    };

    /// Something happened.
    #[event(name = "lint.happened", version = 2, upcast(from_v1))]
    pub struct Happened {
        /// How much.
        pub amount: u64,
    }

    /// The upcaster from version 1.
    ///
    /// # Errors
    /// Never.
    pub fn from_v1(
        payload: serde_json::Value,
    ) -> core::result::Result<serde_json::Value, es_core::upcast::UpcastError> {
        core::result::Result::Ok(payload)
    }

    /// A unit event.
    #[event]
    pub struct Pinged;

    /// A tuple event.
    #[event]
    pub struct Tupled(pub String, pub u32);

    /// Do it.
    #[derive(Clone)]
    pub struct DoIt;

    /// Do it later.
    #[derive(Clone)]
    pub struct DoItLater;

    /// Refusal.
    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    pub struct Refused;

    /// Services.
    #[derive(Default)]
    pub struct Clock;

    /// The aggregate.
    #[derive(Default, Debug, serde::Serialize, serde::Deserialize, Aggregate)]
    #[aggregate(
        name = "lint",
        error = Refused,
        events(Happened, Pinged, Tupled),
        commands(DoIt),
        async_commands(DoItLater),
        services = Clock,
        snapshot = 3
    )]
    pub struct Linted {
        total: u64,
    }

    impl Apply<Happened> for Linted {
        fn apply(&mut self, event: &Happened) {
            self.total += event.amount;
        }
    }
    impl Apply<Pinged> for Linted {
        fn apply(&mut self, _: &Pinged) {}
    }
    impl Apply<Tupled> for Linted {
        fn apply(&mut self, _: &Tupled) {}
    }
    impl Handle<DoIt> for Linted {
        fn handle(&self, _: DoIt) -> core::result::Result<Events<Self>, Refused> {
            core::result::Result::Ok(Events::one(Happened { amount: 1 }))
        }
    }
    impl HandleAsync<DoItLater> for Linted {
        async fn handle_async(
            &self,
            _: DoItLater,
            _: &Clock,
        ) -> core::result::Result<Events<Self>, Refused> {
            core::result::Result::Ok(Events::one(Pinged))
        }
    }

    /// The projection.
    #[derive(Default, Projection)]
    #[projection(name = "lint_view", events(Happened, Pinged), reset)]
    pub struct LintView {
        /// Sum.
        pub sum: u64,
    }

    impl Reset for LintView {
        async fn reset(&mut self, (): &mut ()) -> core::result::Result<(), HandlerError> {
            self.sum = 0;
            core::result::Result::Ok(())
        }
    }

    impl Project<Happened> for LintView {
        async fn project(
            &mut self,
            event: EventEnvelope<Happened>,
            (): &mut (),
        ) -> core::result::Result<(), HandlerError> {
            self.sum += event.event.amount;
            core::result::Result::Ok(())
        }
    }
    impl Project<Pinged> for LintView {
        async fn project(
            &mut self,
            _: EventEnvelope<Pinged>,
            (): &mut (),
        ) -> core::result::Result<(), HandlerError> {
            core::result::Result::Ok(())
        }
    }
}

#[tokio::test]
async fn the_lint_clean_domain_runs() {
    use domain::{DoIt, DoItLater, LintView, Linted};
    let app = es_core::Registry::new(es_core::MemoryStore::new())
        .aggregate::<Linted>()
        .projection(LintView::default())
        .build()
        .await
        .unwrap();
    app.execute::<Linted>("x", DoIt).await.unwrap();
    let done = app.execute::<Linted>("x", DoItLater).await.unwrap();
    assert_eq!(done.version.get(), 2);
    app.catch_up().await.unwrap();
    assert_eq!(app.projection_status()[0].events_applied, 2);
    assert_eq!(app.rebuild("lint_view", |_| {}).await.unwrap(), 2);
}
