//! Placeholder substitution for the report's hand-written Markdown
//! (`template.md`, `micro.md`), a small subset of Mustache's syntax:
//!
//! - `{{name}}` anywhere in a line is replaced by the text `name` was given,
//!   without its trailing newlines (the template's own lines carry those);
//! - `{{#name}}` … `{{/name}}`, each alone on its line, keep the lines between
//!   them when `name` is a true flag or a non-empty text, and drop them
//!   otherwise; `{{^name}}` … `{{/name}}` do the opposite. The tag lines
//!   themselves never reach the output. Sections nest.
//! - `{{! a comment }}` alone on its line is dropped.
//!
//! A placeholder that was given no value, a flag used as text, or a section
//! left open is an error naming the template line: a template and its code
//! cannot drift apart silently. Names: figures of the results document keep
//! its field names (`batch_delay_ms`); generated blocks are hyphenated
//! (`sync-table:local`, `goals:issue-5`).

use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// What one placeholder stands for.
enum Value {
    /// Substituted as is; a section on it is shown when it is not empty.
    Text(String),
    /// Only for sections: shown when true.
    Flag(bool),
}

/// The values a template is rendered with, by placeholder name.
#[derive(Default)]
pub struct Values(BTreeMap<String, Value>);

impl Values {
    /// Sets `name` to a text (a figure, a table, a link).
    pub fn text(&mut self, name: &str, text: impl Into<String>) -> &mut Self {
        self.0.insert(name.to_string(), Value::Text(text.into()));
        self
    }

    /// Sets `name` to a flag, for `{{#name}}` and `{{^name}}` sections.
    pub fn flag(&mut self, name: &str, on: bool) -> &mut Self {
        self.0.insert(name.to_string(), Value::Flag(on));
        self
    }

    /// Whether a section on `name` is shown.
    fn shown(&self, name: &str) -> Option<bool> {
        self.0.get(name).map(|v| match v {
            Value::Text(t) => !t.is_empty(),
            Value::Flag(on) => *on,
        })
    }
}

/// A tag alone on its line: `{{#name}}`, `{{^name}}`, `{{/name}}` or a
/// comment, `{{! … }}`.
enum Tag<'a> {
    Open { name: &'a str, inverted: bool },
    Close(&'a str),
    Comment,
}

fn tag(line: &str) -> Option<Tag<'_>> {
    let inner = line.trim_end().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.starts_with('!') {
        return Some(Tag::Comment);
    }
    if let Some(name) = inner.strip_prefix('#') {
        Some(Tag::Open {
            name,
            inverted: false,
        })
    } else if let Some(name) = inner.strip_prefix('^') {
        Some(Tag::Open {
            name,
            inverted: true,
        })
    } else {
        inner.strip_prefix('/').map(Tag::Close)
    }
}

/// Renders `template` (named `what` in errors) with `values`.
///
/// Errors: an unknown placeholder or section name, a flag used as text, a
/// section closed under another name or never closed; each names the line.
pub fn render(what: &str, template: &str, values: &Values) -> anyhow::Result<String> {
    let mut out = String::new();
    // Open sections: (name, shown).
    let mut open: Vec<(&str, bool)> = Vec::new();
    for (n, line) in template.lines().enumerate() {
        let at = || format!("{what}:{}", n + 1);
        match tag(line) {
            Some(Tag::Open { name, inverted }) => {
                let shown = values
                    .shown(name)
                    .with_context(|| format!("{}: no value for section {{{{{name}}}}}", at()))?;
                open.push((name, shown != inverted));
            }
            Some(Tag::Close(name)) => match open.pop() {
                Some((opened, _)) if opened == name => {}
                _ => bail!("{}: {{{{/{name}}}}} closes no open {{{{#{name}}}}}", at()),
            },
            Some(Tag::Comment) => {}
            None => {
                let line = substitute(line, values).with_context(at)?;
                if open.iter().all(|(_, shown)| *shown) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
    if let Some((name, _)) = open.pop() {
        bail!("{what}: section {{{{#{name}}}}} is never closed");
    }
    Ok(out)
}

/// `line` with every `{{name}}` replaced by its text.
fn substitute(line: &str, values: &Values) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..]
            .find("}}")
            .with_context(|| format!("unclosed placeholder in {line:?}"))?;
        let name = &rest[start + 2..start + end];
        match values.0.get(name) {
            Some(Value::Text(text)) => {
                out.push_str(&rest[..start]);
                out.push_str(text.trim_end_matches('\n'));
            }
            Some(Value::Flag(_)) => bail!("{{{{{name}}}}} is a flag, only for sections"),
            None => bail!("no value for placeholder {{{{{name}}}}}"),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        let mut v = Values::default();
        v.text("runs", "3")
            .text("table", "| a |\n| b |\n")
            .text("empty", "")
            .flag("main", false);
        v
    }

    #[test]
    fn placeholders_take_their_text_without_trailing_newlines() {
        let out = render("t", "runs: {{runs}}.\n{{table}}\nend\n", &values()).unwrap();
        assert_eq!(out, "runs: 3.\n| a |\n| b |\nend\n");
    }

    #[test]
    fn sections_on_empty_text_or_false_flag_disappear_with_their_tags() {
        let t = "{{! dropped }}\na\n{{#empty}}\n{{empty}}x\n{{/empty}}\n{{^main}}\nb\n{{/main}}\n{{#table}}\nc\n{{/table}}\n";
        assert_eq!(render("t", t, &values()).unwrap(), "a\nb\nc\n");
    }

    #[test]
    fn unknown_placeholder_fails_even_inside_a_hidden_section() {
        let err = render("t", "a\n{{#main}}\n{{nope}}\n{{/main}}\n", &values()).unwrap_err();
        assert!(format!("{err:#}").contains("t:3: no value for placeholder {{nope}}"));
    }

    #[test]
    fn flag_as_text_and_unbalanced_sections_fail() {
        assert!(render("t", "{{main}}\n", &values()).is_err());
        assert!(render("t", "{{#main}}\n", &values()).is_err());
        assert!(render("t", "{{#main}}\n{{/runs}}\n", &values()).is_err());
        assert!(render("t", "{{#nope}}\n{{/nope}}\n", &values()).is_err());
    }
}
