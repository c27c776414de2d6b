//! Finding where a field is written in a TOML file, so that every error can name a line.

use toml::de::{DeTable, DeValue};

/// A line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column (in characters), from 1.
    pub column: usize,
}

/// The line and column of byte offset `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> LineCol {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    LineCol {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

/// A dotted path like `machine.cache.line` or `timeline[3].cpu`, split into keys and indices.
fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(&rest[..i]));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest));
        }
    }
    out
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the value at `path` is written in `text`; falls back to the nearest enclosing table
/// or array that is written, and to `None` if nothing of the path is.
pub fn locate(text: &str, path: &str) -> Option<LineCol> {
    let root = DeTable::parse(text).ok()?;
    let mut best: Option<std::ops::Range<usize>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for seg in segments(path) {
        let next = match (seg, table, value) {
            (Seg::Key(k), Some(t), _) => t.get(k),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(i),
            (Seg::Key(_), None, _) | (Seg::Index(_), _, _) => None,
        };
        let Some(v) = next else { break };
        best = Some(v.span());
        value = Some(v.get_ref());
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            DeValue::String(_)
            | DeValue::Integer(_)
            | DeValue::Float(_)
            | DeValue::Boolean(_)
            | DeValue::Datetime(_)
            | DeValue::Array(_) => None,
        };
    }
    best.map(|r| line_col(text, r.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "seed = 1\n\n[machine]\ncells = 0\n[machine.cache]\nline = 100\n\n\
                       [[timeline]]\nat = \"1ms\"\n[[timeline]]\nat = \"2ms\"\ncpu = 99\n";

    #[test]
    fn finds_nested_keys_and_array_elements() {
        assert_eq!(locate(DOC, "seed").map(|l| l.line), Some(1));
        assert_eq!(locate(DOC, "machine.cells").map(|l| l.line), Some(4));
        assert_eq!(
            locate(DOC, "machine.cache.line"),
            Some(LineCol { line: 6, column: 8 })
        );
        assert_eq!(locate(DOC, "timeline[1].cpu").map(|l| l.line), Some(12));
    }

    #[test]
    fn falls_back_to_the_enclosing_table() {
        assert_eq!(locate(DOC, "machine.cache.ways").map(|l| l.line), Some(5));
        assert_eq!(locate(DOC, "workload.kind"), None);
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), LineCol { line: 2, column: 4 });
        assert_eq!(line_col("x", 99), LineCol { line: 1, column: 2 });
    }
}
