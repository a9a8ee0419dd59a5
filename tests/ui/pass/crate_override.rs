//! `crate = path` for crates that reach es-core under another name: through a module that
//! re-exports it, and through a renamed `extern crate`.

extern crate es_core as renamed;

mod runtime {
    pub use ::es_core::*;
}

use renamed::{Aggregate as _, Apply, EventSet as _, Events, Handle, Projection as _};

#[renamed::event(crate = crate::runtime, name = "ping")]
pub struct Pinged;

#[renamed::event(crate = ::renamed, version = 2, upcast(keep))]
pub struct Ponged {
    pub n: u8,
}

fn keep(payload: serde_json::Value) -> Result<serde_json::Value, renamed::upcast::UpcastError> {
    Ok(payload)
}

pub struct Ping;

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct Refused;

#[derive(Default, renamed::Aggregate)]
#[aggregate(crate = crate::runtime, error = Refused, events(Pinged, Ponged), commands(Ping),
            snapshot = 3)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Table {
    pings: u32,
}

impl Apply<Pinged> for Table {
    fn apply(&mut self, _: &Pinged) {
        self.pings += 1;
    }
}

impl Apply<Ponged> for Table {
    fn apply(&mut self, _: &Ponged) {}
}

impl Handle<Ping> for Table {
    fn handle(&self, _: Ping) -> Result<Events<Self>, Refused> {
        Ok(Events::one(Pinged))
    }
}

#[derive(renamed::Projection)]
#[projection(crate = renamed, events(Pinged))]
pub struct PingCount;

impl renamed::Project<Pinged> for PingCount {
    async fn project(
        &mut self,
        _: renamed::EventEnvelope<Pinged>,
        _: &mut (),
    ) -> Result<(), renamed::HandlerError> {
        Ok(())
    }
}

fn main() {
    assert_eq!(TableEvent::NAMES, ["ping", "ponged"]);
    assert_eq!(Table::NAME, "table");
    assert_eq!(PingCount::EVENT_TYPES, ["ping"]);
    let mut table = Table::default();
    renamed::Aggregate::apply_event(&mut table, &TableEvent::from(Pinged));
    assert_eq!(table.pings, 1);
    let _ = Ping;
}
