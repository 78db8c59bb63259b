//! Targets: what ops are applied to. Each kind of target gets a module; the
//! embedded default is [`in_process`], CRDT models living in this process;
//! [`automerge`] drives automerge documents over its real sync protocol.

pub mod automerge;
pub mod in_process;
pub mod maelstrom;
