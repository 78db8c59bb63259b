//! Targets: what ops are applied to. Each kind of target gets a module; the
//! embedded default is [`in_process`], CRDT models living in this process;
//! [`maelstrom`] drives node processes and [`sql`] a database.

pub mod http;
pub mod in_process;
pub mod maelstrom;
pub mod sql;
