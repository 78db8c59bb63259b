//! Maelstrom's wire format: one JSON object per line, `{src, dest, body}`,
//! bodies with `type`, `msg_id` and `in_reply_to`, and error codes.

use serde_json::{Map, Value};

/// Error code: the request timed out (indefinite).
pub const TIMEOUT: i64 = 0;
/// Error code: the operation is not supported.
pub const NOT_SUPPORTED: i64 = 10;
/// Error code: the node crashed while handling it (indefinite).
pub const CRASH: i64 = 13;
/// Error code: the key does not exist (definite).
pub const KEY_DOES_NOT_EXIST: i64 = 20;
/// Error code: a cas precondition failed (definite).
pub const PRECONDITION_FAILED: i64 = 22;

/// Whether an error code leaves the outcome unknown: 0, 13 and codes from
/// 1000 up are indefinite; every other code means the op did not happen.
pub fn is_indefinite(code: i64) -> bool {
    code == TIMEOUT || code == CRASH || code >= 1000
}

/// One message as it travels between nodes, clients and services.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Sender.
    pub src: String,
    /// Receiver.
    pub dest: String,
    /// Body: any JSON object. Maelstrom's network passes bodies through
    /// untouched, so neither `type` nor `msg_id` nor `in_reply_to` is
    /// required, and either may be `null`.
    pub body: Map<String, Value>,
}

impl Envelope {
    /// Parses one line a node wrote; the error says what is wrong with it.
    /// Only what Maelstrom itself cannot route is an error: a line that is
    /// not a JSON object, or lacks a string `src`, a string `dest` or an
    /// object `body`.
    pub fn parse(line: &str) -> Result<Envelope, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
        let Value::Object(mut object) = value else {
            return Err("not a JSON object".into());
        };
        let mut text = |field: &str| match object.remove(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(format!("`{field}` is not a string: {other}")),
            None => Err(format!("missing `{field}`")),
        };
        let src = text("src")?;
        let dest = text("dest")?;
        let body = match object.remove("body") {
            Some(Value::Object(body)) => body,
            Some(other) => return Err(format!("`body` is not an object: {other}")),
            None => return Err("missing `body`".into()),
        };
        Ok(Envelope { src, dest, body })
    }

    /// The line to write to a node's stdin, with the network's own `id`.
    pub fn to_line(&self, id: u64) -> String {
        // Written by hand so the body is serialized in place, not cloned.
        let mut line = String::with_capacity(64 + self.src.len() + self.dest.len());
        line.push_str("{\"id\":");
        line.push_str(itoa::Buffer::new().format(id));
        line.push_str(",\"src\":");
        line.push_str(&Value::from(self.src.as_str()).to_string());
        line.push_str(",\"dest\":");
        line.push_str(&Value::from(self.dest.as_str()).to_string());
        line.push_str(",\"body\":");
        line.push_str(&serde_json::to_string(&self.body).unwrap_or_else(|_| "{}".into()));
        line.push_str("}\n");
        line
    }

    /// `body.type`.
    pub fn kind(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// `body.in_reply_to`.
    pub fn in_reply_to(&self) -> Option<u64> {
        self.body.get("in_reply_to").and_then(Value::as_u64)
    }

    /// `body.msg_id`.
    pub fn msg_id(&self) -> Option<u64> {
        self.body.get("msg_id").and_then(Value::as_u64)
    }
}

/// Builds a body from a type and fields.
pub fn body(
    kind: &str,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("type".into(), Value::from(kind));
    for (k, v) in fields {
        body.insert(k.into(), v);
    }
    body
}

/// An error reply body.
pub fn error_body(in_reply_to: Option<u64>, code: i64, text: &str) -> Map<String, Value> {
    let mut b = body(
        "error",
        [("code", Value::from(code)), ("text", Value::from(text))],
    );
    if let Some(id) = in_reply_to {
        b.insert("in_reply_to".into(), Value::from(id));
    }
    b
}

/// Quotes a node's line for a finding, shortened.
pub fn quote(line: &str) -> String {
    const MAX: usize = 200;
    let trimmed = line.trim_end();
    if trimmed.len() <= MAX {
        format!("{trimmed:?}")
    } else {
        let mut end = MAX;
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}...", &trimmed[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_with_the_network_id_and_escaped_names() {
        let envelope = Envelope {
            src: "n\"1".into(),
            dest: "c2".into(),
            body: body(
                "read_ok",
                [
                    ("value", Value::from(vec![1, 2])),
                    ("in_reply_to", 5.into()),
                ],
            ),
        };
        let line = envelope.to_line(42);
        assert!(line.ends_with('\n'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["id"], 42);
        assert_eq!(Envelope::parse(&line).unwrap(), envelope);
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let cases = [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"dest":"n0","body":{"type":"x"}}"#, "missing `src`"),
            (r#"{"src":"n0","dest":"c0"}"#, "missing `body`"),
            (
                r#"{"src":"n0","dest":7,"body":{}}"#,
                "`dest` is not a string",
            ),
            (
                r#"{"src":"n0","dest":"c0","body":[]}"#,
                "`body` is not an object",
            ),
        ];
        for (line, expect) in cases {
            let err = Envelope::parse(line).unwrap_err();
            assert!(err.contains(expect), "{line}: {err}");
        }
        // Maelstrom routes these as they are: no type, null ids, odd ids.
        for line in [
            r#"{"src":"n0","dest":"n1","body":{}}"#,
            r#"{"src":"n0","dest":"n1","body":{"type":"gossip","msg_id":null,"in_reply_to":null}}"#,
            r#"{"src":"n0","dest":"n1","body":{"msg_id":-1,"in_reply_to":1e30}}"#,
        ] {
            let envelope = Envelope::parse(line).unwrap();
            assert_eq!(envelope.in_reply_to(), None, "{line}");
        }
        assert!(is_indefinite(0) && is_indefinite(13) && is_indefinite(1000));
        assert!(!is_indefinite(20) && !is_indefinite(22) && !is_indefinite(11));
    }
}
