//! Secrets never reach an output. [`mask`] is the one function every output
//! passes through (stdout and stderr through [`crate::output`], report
//! files, the history header): it hides
//! - the password of a URL's userinfo (`postgres://user:secret@host`,
//!   `http://user:secret@host`);
//! - the value of a `password=` pair, in a URL query
//!   (`sqlite://x.db?password=secret`) or a libpq keyword DSN
//!   (`host=db password=secret`, `password='with spaces'`), and of the
//!   other credential keys ([`SECRET_KEYS`]);
//! - every value [`register`]ed: configured headers such as `Authorization`,
//!   and the passwords found in the command line, so a driver message that
//!   quotes one alone is masked too.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Keys (case-insensitive, as the end of a `key=value` pair's key) whose
/// values are credentials.
pub const SECRET_KEYS: [&str; 5] = ["password", "passwd", "pwd", "secret", "token"];

/// Registered values shorter than this are masked only in the forms above:
/// masking every occurrence of a two-letter password would mangle output.
pub const MIN_REGISTERED_LEN: usize = 4;

static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Masks `secret` wherever it appears in any later output.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_REGISTERED_LEN || secret.contains(MASK) {
        return;
    }
    let mut registered = REGISTERED.write().unwrap_or_else(|p| p.into_inner());
    if !registered.iter().any(|s| s == secret) {
        registered.push(secret.to_string());
        // Longest first: a secret containing another is masked whole.
        registered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers every secret [`mask`] would hide in `text` (URL passwords,
/// `password=` values), so they are masked even where they appear alone.
pub fn register_in(text: &str) {
    for secret in secrets_in(text) {
        register(&secret);
    }
}

/// Registers a configured header's value when its name says it carries a
/// credential (`Authorization`, `Cookie`, `X-Api-Key`, ...), and the
/// credential after its scheme (`Bearer abc` registers `abc` too).
pub fn register_header(name: &str, value: &str) {
    let name = name.to_ascii_lowercase();
    let sensitive = ["auth", "cookie", "key", "token", "secret", "password"]
        .iter()
        .any(|word| name.contains(word));
    if sensitive {
        register(value);
        if let Some((_, credential)) = value.trim().split_once(' ') {
            register(credential);
        }
    }
}

/// `text` with every secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let registered = REGISTERED.read().unwrap_or_else(|p| p.into_inner());
        for secret in registered.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    let spans = secret_spans(&out);
    if spans.is_empty() {
        return out;
    }
    let mut masked = String::with_capacity(out.len());
    let mut at = 0;
    for (start, end) in spans {
        masked.push_str(&out[at..start]);
        masked.push_str(MASK);
        at = end;
    }
    masked.push_str(&out[at..]);
    Cow::Owned(masked)
}

/// The secrets of `text` in the forms [`mask`] knows (not the registered ones).
pub fn secrets_in(text: &str) -> Vec<String> {
    secret_spans(text)
        .into_iter()
        .map(|(start, end)| text[start..end].to_string())
        .collect()
}

/// Byte ranges of secrets in `text`, sorted and disjoint; an already masked
/// value is not one.
fn secret_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = userinfo_spans(text);
    spans.extend(keyword_spans(text));
    spans.retain(|&(start, end)| end > start && &text[start..end] != MASK);
    spans.sort_unstable();
    let mut disjoint: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match disjoint.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => disjoint.push((start, end)),
        }
    }
    disjoint
}

/// Characters that end a URL authority or an unquoted value in free text.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '\\' | ',' | ')' | ']' | '}'
        )
}

/// Passwords of URL userinfo: `scheme://user:PASSWORD@host`.
fn userinfo_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let end = text[start..]
            .find(|c: char| ends_value(c) || matches!(c, '/' | '?' | '#'))
            .map_or(text.len(), |i| start + i);
        let authority = &text[start..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                spans.push((start + colon + 1, start + at));
            }
        }
        from = start;
    }
    spans
}

/// Values of `key=value` pairs whose key ends with one of [`SECRET_KEYS`]:
/// URL query parameters and libpq DSN keywords (`key = 'quoted value'`).
fn keyword_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for (eq, _) in text.match_indices('=') {
        let mut key_end = eq;
        while key_end > 0 && bytes[key_end - 1] == b' ' {
            key_end -= 1;
        }
        let key_start = text[..key_end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let key = text[key_start..key_end].to_ascii_lowercase();
        if key.is_empty() || !SECRET_KEYS.iter().any(|k| key.ends_with(k)) {
            continue;
        }
        let mut start = eq + 1;
        while bytes.get(start) == Some(&b' ') {
            start += 1;
        }
        if bytes.get(start) == Some(&b'\'') {
            // libpq quoting: up to the next quote not escaped by a backslash.
            let open = start + 1;
            let mut end = open;
            while end < bytes.len() && bytes[end] != b'\'' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            spans.push((open, end.min(bytes.len())));
        } else {
            let end = text[start..]
                .find(|c: char| ends_value(c) || matches!(c, '&' | ';'))
                .map_or(text.len(), |i| start + i);
            spans.push((start, end));
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_masked() {
        let cases = [
            (
                "postgres://alice:s3cr:et@db:5432/app",
                "postgres://alice:***@db:5432/app",
            ),
            (
                "http://user:hunter2@host:8080/x",
                "http://user:***@host:8080/x",
            ),
            (
                "sqlite://x.db?mode=rwc&password=hunter2&a=b",
                "sqlite://x.db?mode=rwc&password=***&a=b",
            ),
            (
                "--url 'host=db user=u password=hunter2 dbname=t'",
                "--url 'host=db user=u password=*** dbname=t'",
            ),
            (
                "host=db password = 'two words' port=5",
                "host=db password = '***' port=5",
            ),
            (
                "sslpassword=abc&access_token=xyz",
                "sslpassword=***&access_token=***",
            ),
            ("\"url\":\"a://u:p@h\"", "\"url\":\"a://u:***@h\""),
        ];
        for (text, want) in cases {
            assert_eq!(mask(text), want, "{text}");
            assert_eq!(mask(want), want, "masking is idempotent: {want}");
        }
    }

    #[test]
    fn plain_text_is_left_alone() {
        for text in [
            "postgres://bob@h/db",
            "sqlite://x.db",
            "a = b, key=value",
            "verdict: valid",
            "password",
        ] {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn registered_values_are_masked_anywhere() {
        register_header("Authorization", "Bearer tok-8f3a9c");
        register_header("Content-Type", "application/json");
        assert_eq!(mask("sent tok-8f3a9c to h"), "sent *** to h");
        assert_eq!(mask("application/json"), "application/json");
        register_in("postgres://u:pw-77aa1@h/db");
        assert_eq!(mask("driver said pw-77aa1"), "driver said ***");
    }
}
