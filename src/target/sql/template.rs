//! SQL templates with named parameters (`:key`, `:delta`, ...), translated
//! to the backend's positional binds (`$1` on PostgreSQL, `?1` on SQLite).
//!
//! The scanner skips string literals, quoted identifiers, comments and
//! PostgreSQL casts (`::jsonb`), so only real parameters are bound.

use super::Backend;

/// A template translated for one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// SQL with positional placeholders.
    pub sql: String,
    /// Parameter names, by position (each name once; repeats share a position).
    pub params: Vec<String>,
}

/// The named parameters of `sql`, in order of first appearance.
pub fn names(sql: &str) -> Vec<String> {
    translate(sql, Backend::Postgres).params
}

/// Rewrites `:name` parameters as positional binds for `backend`.
pub fn translate(sql: &str, backend: Backend) -> Template {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut params: Vec<String> = Vec::new();
    let mut i = 0;
    let ident_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // Copy a quoted literal or identifier whole ('' escapes stay inside).
                let end = sql[i + 1..]
                    .find(b as char)
                    .map_or(sql.len(), |j| i + 1 + j + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map_or(sql.len(), |j| i + j);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => {
                out.push_str("::");
                i += 2;
            }
            b':' if bytes.get(i + 1).is_some_and(|&c| ident_start(c))
                && (i == 0 || !ident(bytes[i - 1])) =>
            {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && ident(bytes[end]) {
                    end += 1;
                }
                let name = &sql[start..end];
                let position = match params.iter().position(|p| p == name) {
                    Some(p) => p + 1,
                    None => {
                        params.push(name.to_string());
                        params.len()
                    }
                };
                match backend {
                    Backend::Postgres => out.push('$'),
                    Backend::Sqlite => out.push('?'),
                }
                out.push_str(&position.to_string());
                i = end;
            }
            _ => {
                let ch = sql[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Template { sql: out, params }
}

/// Whether a statement returns rows whose columns later statements may use.
pub fn returns_rows(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_lowercase();
    head.starts_with("select") || head.starts_with("with") || head.contains("returning")
}

/// Whether `word` appears in `sql` as a whole identifier (a column a later
/// statement may name).
pub fn mentions(sql: &str, word: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    lower.match_indices(&word).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after) && before != Some(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_become_positional_and_repeats_share_a_position() {
        let t = translate(
            "UPDATE c SET v = v + :delta WHERE k = :key AND :delta > 0",
            Backend::Postgres,
        );
        assert_eq!(t.sql, "UPDATE c SET v = v + $1 WHERE k = $2 AND $1 > 0");
        assert_eq!(t.params, ["delta", "key"]);
        let t = translate("SELECT :key", Backend::Sqlite);
        assert_eq!(t.sql, "SELECT ?1");
    }

    #[test]
    fn casts_literals_and_comments_are_not_parameters() {
        let sql = "SELECT :clock::jsonb, '{\"a\":1}', \"x:y\" -- :not\n, :key";
        let t = translate(sql, Backend::Postgres);
        assert_eq!(t.params, ["clock", "key"]);
        assert_eq!(
            t.sql,
            "SELECT $1::jsonb, '{\"a\":1}', \"x:y\" -- :not\n, $2"
        );
    }

    #[test]
    fn columns_of_earlier_queries_are_found_as_whole_words() {
        assert!(mentions("SELECT v FROM counter WHERE k = :key", "v"));
        assert!(!mentions("SELECT value FROM counter", "v"));
        assert!(!mentions("SELECT 1 WHERE k = :v", "v"));
        assert!(returns_rows("  select v from t"));
        assert!(returns_rows(
            "INSERT INTO t VALUES (1) RETURNING 1 AS fresh"
        ));
        assert!(!returns_rows("UPDATE t SET v = 1"));
    }
}
