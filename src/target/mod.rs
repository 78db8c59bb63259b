//! Targets: what ops are applied to. Each kind of target gets a module; the
//! embedded default is [`in_process`], CRDT models living in this process;
//! [`maelstrom`] drives node processes, [`sql`] a database, [`http`] a
//! service behind HTTP, and [`automerge`] automerge documents over its real
//! sync protocol.

pub mod automerge;
pub mod http;
pub mod in_process;
pub mod maelstrom;
pub mod misconfig;
pub mod nemeses;
pub mod settle;
pub mod sql;
