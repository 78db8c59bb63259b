//! One replica: an `automerge::AutoCommit` document behind the operations the
//! writers, the sync links and the final phase need. This is the wrapper a
//! fault breaks ([`MergeMode::Replace`]).

use super::layout::{Layout, Slot};
use crate::error::{Error, Result};
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{
    ActorId, AutoCommit, AutoSerde, ChangeHash, LoadOptions, ObjId, ObjType, ReadDoc, ScalarValue,
    TextEncoding, Value as AmValue, ROOT,
};
use converge_models::Value;

/// Text indices count code points, on every replica and after every load.
pub const TEXT_ENCODING: TextEncoding = TextEncoding::UnicodeCodePoint;

/// How a replica merges a whole document into its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// `AutoCommit::merge`.
    Merge,
    /// A fault: the document is replaced by a fork of the other one.
    Replace,
}

/// What a replica's state looks like from outside: heads and hydrated value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Sorted heads, each as four big-endian words.
    pub heads: Vec<u64>,
    /// FNV-1a hash of the JSON export.
    pub document: u64,
}

impl Fingerprint {
    /// The fingerprint as one value (heads words, then the document hash), for probes.
    pub fn to_value(&self) -> Value {
        let mut words = self.heads.clone();
        words.push(self.document);
        Value::Elems(words)
    }
}

/// The actor id of replica `id`: fixed, so that a run is reproducible.
pub fn actor(id: u16) -> ActorId {
    ActorId::from(format!("converge-replica-{id:05}").into_bytes())
}

fn map_key(slot: Slot) -> String {
    match slot {
        Slot::Counter(i) => format!("c{i}"),
        Slot::Register(i) => format!("r{i}"),
        Slot::List => "list".into(),
        Slot::Text => "text".into(),
        Slot::Heads | Slot::Document => String::new(),
    }
}

fn automerge_error(component: &str, e: impl std::fmt::Display) -> Error {
    Error::Target {
        component: component.to_string(),
        message: e.to_string(),
    }
}

/// The document every replica starts from: counters at zero, an empty list
/// and an empty text, created once so that no two replicas race to create
/// the same object (which automerge would keep as a conflict).
pub fn genesis(layout: Layout) -> Result<AutoCommit> {
    let err = |e| automerge_error("automerge genesis document", e);
    let mut doc = AutoCommit::new_with_encoding(TEXT_ENCODING)
        .with_actor(ActorId::from(b"converge-genesis".to_vec()));
    for i in 0..layout.per_kind {
        doc.put(ROOT, map_key(Slot::Counter(i)), ScalarValue::counter(0))
            .map_err(err)?;
    }
    doc.put_object(ROOT, map_key(Slot::List), ObjType::List)
        .map_err(err)?;
    doc.put_object(ROOT, map_key(Slot::Text), ObjType::Text)
        .map_err(err)?;
    doc.commit();
    Ok(doc)
}

/// A replica's document and the object ids it uses.
pub struct Replica {
    /// Replica number.
    pub id: u16,
    doc: AutoCommit,
    list: ObjId,
    text: ObjId,
    merge_mode: MergeMode,
    /// Bumped whenever the document may have changed; sync links compare it.
    pub version: u64,
}

impl Replica {
    /// Replica `id`, a fork of `genesis` with its own actor.
    pub fn new(id: u16, genesis: &mut AutoCommit, merge_mode: MergeMode) -> Result<Self> {
        let doc = genesis.fork().with_actor(actor(id));
        let component = format!("automerge replica {id}");
        let object = |doc: &AutoCommit, slot| -> Result<ObjId> {
            match doc.get(ROOT, map_key(slot)) {
                Ok(Some((AmValue::Object(_), id))) => Ok(id),
                Ok(_) => Err(automerge_error(&component, "genesis object missing")),
                Err(e) => Err(automerge_error(&component, e)),
            }
        };
        let list = object(&doc, Slot::List)?;
        let text = object(&doc, Slot::Text)?;
        Ok(Replica {
            id,
            doc,
            list,
            text,
            merge_mode,
            version: 0,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        automerge_error(&format!("automerge replica {}", self.id), e)
    }

    /// An op is acknowledged once it is in the document. AutoCommit closes
    /// the open change before any sync, merge, fork or save, so the ops a
    /// replica takes between two network ticks travel as one change, as an
    /// application's would.
    fn commit(&mut self) {
        self.version += 1;
    }

    /// Increments counter `i` by `delta`.
    pub fn increment(&mut self, i: u32, delta: i64) -> Result<()> {
        self.doc
            .increment(ROOT, map_key(Slot::Counter(i)), delta)
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(())
    }

    /// Tags currently visible at register `i` (all conflicting values).
    pub fn register_tags(&self, i: u32) -> Result<Vec<u64>> {
        let values = self
            .doc
            .get_all(ROOT, map_key(Slot::Register(i)))
            .map_err(|e| self.err(e))?;
        Ok(values.iter().map(|(v, _)| tag_of(v)).collect())
    }

    /// Puts `tag` on register `i`; returns the tags it overwrote (those it saw).
    pub fn put(&mut self, i: u32, tag: u64) -> Result<Vec<u64>> {
        let observed = self.register_tags(i)?;
        self.doc
            .put(ROOT, map_key(Slot::Register(i)), ScalarValue::Uint(tag))
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(observed)
    }

    /// Inserts `tag` in the list at `at` modulo its length plus one.
    pub fn insert(&mut self, at: u64, tag: u64) -> Result<()> {
        let len = self.doc.length(&self.list) as u64;
        let index = (at % (len + 1)) as usize;
        self.doc
            .insert(&self.list, index, ScalarValue::Uint(tag))
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(())
    }

    /// Deletes the list element at `at` modulo the length; returns its tag,
    /// or `None` on an empty list.
    pub fn delete(&mut self, at: u64) -> Result<Option<u64>> {
        let len = self.doc.length(&self.list) as u64;
        if len == 0 {
            return Ok(None);
        }
        let index = (at % len) as usize;
        let tag = match self.doc.get(&self.list, index).map_err(|e| self.err(e))? {
            Some((v, _)) => tag_of(&v),
            None => return Err(self.err(format!("list index {index} of {len} is empty"))),
        };
        self.doc
            .delete(&self.list, index)
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(Some(tag))
    }

    /// Splices `chars` into the text at `at` modulo its length plus one.
    pub fn splice_insert(&mut self, at: u64, chars: &str) -> Result<()> {
        let len = self.doc.length(&self.text) as u64;
        let index = (at % (len + 1)) as usize;
        self.doc
            .splice_text(&self.text, index, 0, chars)
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(())
    }

    /// Splices one character out of the text at `at` modulo its length;
    /// returns it, or `None` on an empty text.
    pub fn splice_delete(&mut self, at: u64) -> Result<Option<char>> {
        let len = self.doc.length(&self.text) as u64;
        if len == 0 {
            return Ok(None);
        }
        let index = (at % len) as usize;
        let text = self.doc.text(&self.text).map_err(|e| self.err(e))?;
        let removed = text.chars().nth(index);
        self.doc
            .splice_text(&self.text, index, 1, "")
            .map_err(|e| self.err(e))?;
        self.commit();
        Ok(removed)
    }

    /// Whole-document merge of `other` into this replica.
    pub fn merge_from(&mut self, other: &mut AutoCommit) -> Result<()> {
        match self.merge_mode {
            MergeMode::Merge => {
                self.doc.merge(other).map_err(|e| self.err(e))?;
            }
            MergeMode::Replace => self.doc = other.fork().with_actor(actor(self.id)),
        }
        self.version += 1;
        Ok(())
    }

    /// A copy of the document (a fork keeps no open transaction).
    pub fn fork(&mut self) -> AutoCommit {
        self.doc.fork()
    }

    /// Saves the document and loads it back, as a restart would.
    pub fn save_and_load(&mut self) -> Result<()> {
        let bytes = self.doc.save();
        let loaded =
            AutoCommit::load_with_options(&bytes, LoadOptions::new().text_encoding(TEXT_ENCODING))
                .map_err(|e| self.err(format!("load after save: {e}")))?;
        self.doc = loaded.with_actor(actor(self.id));
        self.version += 1;
        Ok(())
    }

    /// The next sync message for the peer whose state is `state`, if any.
    pub fn generate(&mut self, state: &mut State) -> Option<Message> {
        self.doc.sync().generate_sync_message(state)
    }

    /// Applies a sync message from the peer whose state is `state`.
    pub fn receive(&mut self, state: &mut State, message: Message) -> Result<()> {
        let carries_changes = !message.changes.is_empty();
        let received = self.doc.sync().receive_sync_message(state, message);
        received.map_err(|e| self.err(format!("receive_sync_message: {e}")))?;
        if carries_changes {
            self.version += 1;
        }
        Ok(())
    }

    /// Current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Heads and a hash of the hydrated document.
    pub fn fingerprint(&mut self) -> Result<Fingerprint> {
        let mut heads = self.doc.get_heads();
        heads.sort();
        let words = heads
            .iter()
            .flat_map(|h| {
                h.0.chunks_exact(8)
                    .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect::<Vec<_>>()
            })
            .collect();
        let json = serde_json::to_vec(&AutoSerde::from(&self.doc))
            .map_err(|e| self.err(format!("JSON export: {e}")))?;
        Ok(Fingerprint {
            heads: words,
            document: fnv1a(&json),
        })
    }

    /// What every key reads as now: counter values, register tags (sorted),
    /// list tags and text code points in document order, heads, document hash.
    pub fn read_all(&mut self, layout: Layout) -> Result<Vec<(u32, Value)>> {
        let fingerprint = self.fingerprint()?;
        let mut reads = Vec::with_capacity(layout.total() as usize);
        for (key, slot) in layout.slots() {
            let value = match slot {
                Slot::Counter(i) => {
                    let got = self
                        .doc
                        .get(ROOT, map_key(Slot::Counter(i)))
                        .map_err(|e| self.err(e))?;
                    Value::Int(match got {
                        Some((AmValue::Scalar(s), _)) => match s.as_ref() {
                            ScalarValue::Counter(c) => i64::from(c),
                            other => other.as_i64().unwrap_or(i64::MIN),
                        },
                        _ => i64::MIN,
                    })
                }
                Slot::Register(i) => {
                    let mut tags = self.register_tags(i)?;
                    tags.sort_unstable();
                    Value::Elems(tags)
                }
                Slot::List => {
                    let len = self.doc.length(&self.list);
                    let mut tags = Vec::with_capacity(len);
                    for index in 0..len {
                        let got = self.doc.get(&self.list, index).map_err(|e| self.err(e))?;
                        tags.push(got.map_or(u64::MAX, |(v, _)| tag_of(&v)));
                    }
                    Value::Elems(tags)
                }
                Slot::Text => {
                    let text = self.doc.text(&self.text).map_err(|e| self.err(e))?;
                    Value::Elems(text.chars().map(|c| c as u64).collect())
                }
                Slot::Heads => Value::Elems(fingerprint.heads.clone()),
                Slot::Document => Value::Int(fingerprint.document as i64),
            };
            reads.push((key, value));
        }
        Ok(reads)
    }
}

/// The tag a register or list value carries; `u64::MAX` for anything a
/// writer never wrote (the checker reports it as unexpected).
fn tag_of(value: &AmValue<'_>) -> u64 {
    match value {
        AmValue::Scalar(s) => match s.as_ref() {
            ScalarValue::Uint(t) => *t,
            _ => u64::MAX,
        },
        AmValue::Object(_) => u64::MAX,
    }
}

/// FNV-1a, 64 bits: stable across runs and platforms, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
