//! Request templates: `{field}` placeholders in paths, header values and
//! JSON bodies, filled from an op's fields.
//!
//! In a path or a header a placeholder becomes the field's text. In a body,
//! a string that is exactly one placeholder becomes the field's JSON value
//! (a number stays a number, a causal context stays an object); a longer
//! string gets the text interpolated. `{{` and `}}` are literal braces.

use serde_json::Value;
use std::collections::BTreeMap;

/// The op fields a template may name.
pub const FIELDS: &[&str] = &[
    "key", "value", "delta", "element", "op_id", "context", "replica", "blocked",
];

/// Fields of one op, by name.
pub type Fields = BTreeMap<&'static str, Value>;

/// One piece of a parsed string template.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(&'static str),
}

/// A string with placeholders, parsed once.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses a template; `allowed` are the fields this op has. The error
    /// names the placeholder that is unknown or absent from this op.
    pub fn parse(text: &str, allowed: &[&'static str]) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!(
                    "unmatched '}}' in \"{text}\" (write '}}}}' for a brace)"
                ));
            }
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in \"{text}\""))?;
            let name = &tail[1..end];
            let field = FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
                format!(
                    "unknown field {{{name}}} in \"{text}\" (fields: {})",
                    FIELDS.join(", ")
                )
            })?;
            if !allowed.contains(field) {
                return Err(format!(
                    "field {{{name}}} in \"{text}\" does not exist for this operation (it has: {})",
                    allowed.join(", ")
                ));
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(field));
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// The text with every placeholder replaced by its field's text.
    pub fn render(&self, fields: &Fields) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => match fields.get(f) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {}
                },
            }
        }
        out
    }

    /// Renders a body string: a lone placeholder keeps its field's JSON type.
    fn render_value(&self, fields: &Fields) -> Value {
        if let [Piece::Field(f)] = self.0.as_slice() {
            return fields.get(f).cloned().unwrap_or(Value::Null);
        }
        Value::String(self.render(fields))
    }
}

/// A JSON body whose strings are templates.
#[derive(Clone, Debug, PartialEq)]
pub enum BodyTemplate {
    /// A string template.
    Text(Template),
    /// An array of templates.
    Array(Vec<BodyTemplate>),
    /// An object of templates (keys are literal).
    Object(Vec<(String, BodyTemplate)>),
    /// A literal number, boolean or null.
    Literal(Value),
}

impl BodyTemplate {
    /// Parses every string of a JSON value as a template.
    pub fn parse(value: &Value, allowed: &[&'static str]) -> Result<BodyTemplate, String> {
        Ok(match value {
            Value::String(s) => BodyTemplate::Text(Template::parse(s, allowed)?),
            Value::Array(items) => BodyTemplate::Array(
                items
                    .iter()
                    .map(|v| BodyTemplate::parse(v, allowed))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => BodyTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), BodyTemplate::parse(v, allowed)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => BodyTemplate::Literal(other.clone()),
        })
    }

    /// The JSON body for these fields.
    pub fn render(&self, fields: &Fields) -> Value {
        match self {
            BodyTemplate::Text(t) => t.render_value(fields),
            BodyTemplate::Array(items) => {
                Value::Array(items.iter().map(|t| t.render(fields)).collect())
            }
            BodyTemplate::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(fields)))
                    .collect(),
            ),
            BodyTemplate::Literal(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_render_as_text_in_paths_and_as_json_in_bodies() {
        let fields: Fields = [
            ("key", json!("k1")),
            ("delta", json!(-3)),
            ("context", json!({"0": 2})),
        ]
        .into_iter()
        .collect();
        let path = Template::parse("/c/{key}/inc?d={delta}&x={{y}}", &["key", "delta"]).unwrap();
        assert_eq!(path.render(&fields), "/c/k1/inc?d=-3&x={y}");
        let body = BodyTemplate::parse(
            &json!({"delta": "{delta}", "ctx": "{context}", "note": "by {key}", "n": 1}),
            &["key", "delta", "context"],
        )
        .unwrap();
        assert_eq!(
            body.render(&fields),
            json!({"delta": -3, "ctx": {"0": 2}, "note": "by k1", "n": 1})
        );
    }

    #[test]
    fn unknown_or_absent_fields_are_errors_naming_them() {
        let e = Template::parse("/c/{nope}", &["key"]).unwrap_err();
        assert!(e.contains("{nope}"), "{e}");
        let e = Template::parse("/c/{element}", &["key"]).unwrap_err();
        assert!(e.contains("does not exist for this operation"), "{e}");
        assert!(Template::parse("/c/{key", &["key"]).is_err());
        assert!(Template::parse("/c/key}", &["key"]).is_err());
    }
}
