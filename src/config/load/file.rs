//! The configuration file: TOML parsing, the unknown-key check and value lookup by key.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::keys::{self, Key};

/// A parsed configuration file whose keys are all known.
pub(super) struct ConfigFile<'a> {
    path: &'a Path,
    text: &'a str,
    root: DeTable<'a>,
}

impl<'a> ConfigFile<'a> {
    /// Parses `text` and rejects keys and sections that the key table lacks.
    pub(super) fn parse(path: &'a Path, text: &'a str) -> Result<Self, ConfigError> {
        let root = DeTable::parse(text).map_err(|error| syntax_error(path, text, &error))?;
        let file = ConfigFile {
            path,
            text,
            root: root.into_inner(),
        };
        file.check_keys()?;
        Ok(file)
    }

    /// Returns the file's value for `key` and its origin (file and line) for messages.
    pub(super) fn value(&self, key: &Key) -> Option<(&DeValue<'a>, String)> {
        let value = if key.section.is_empty() {
            self.root.get(key.name)?
        } else {
            self.root
                .get(key.section)?
                .get_ref()
                .as_table()?
                .get(key.name)?
        };
        let line = self.line_of(value.span().start);
        let origin = format!("{} at line {line}", self.path.display());
        Some((value.get_ref(), origin))
    }

    fn check_keys(&self) -> Result<(), ConfigError> {
        for (name, value) in self.root.iter() {
            let name = name.get_ref().as_ref();
            let line = self.line_of(value.span().start);
            if keys::find_key("", name).is_some() {
                continue;
            }
            if !keys::is_section(name) {
                return Err(self.unknown_key(name.to_owned(), line, top_level_accepted()));
            }
            let Some(section) = value.get_ref().as_table() else {
                return Err(ConfigError::NotATable {
                    section: name.to_owned(),
                    path: self.path.to_path_buf(),
                    line,
                });
            };
            self.check_section(name, section)?;
        }
        Ok(())
    }

    fn check_section(&self, section: &str, table: &DeTable<'_>) -> Result<(), ConfigError> {
        for (name, value) in table.iter() {
            let name = name.get_ref().as_ref();
            if keys::find_key(section, name).is_none() {
                let accepted = format!(
                    "[{section}] accepts {}",
                    keys::key_names(section).join(", ")
                );
                let line = self.line_of(value.span().start);
                return Err(self.unknown_key(format!("{section}.{name}"), line, accepted));
            }
        }
        Ok(())
    }

    fn unknown_key(&self, key: String, line: usize, accepted: String) -> ConfigError {
        ConfigError::UnknownKey {
            key,
            path: self.path.to_path_buf(),
            line,
            accepted,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        line_and_column(self.text, offset).0
    }
}

fn top_level_accepted() -> String {
    let sections: Vec<String> = keys::section_names()
        .iter()
        .map(|section| format!("[{section}]"))
        .collect();
    format!(
        "the top level accepts {} and the sections {}",
        keys::key_names("").join(", "),
        sections.join(", ")
    )
}

/// Builds the syntax error from the parser's message and position. The parser's own
/// `Display` quotes the offending line, which may contain a secret, so it is not used.
fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start);
    let (line, column) = line_and_column(text, offset);
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message: error.message().to_owned(),
    }
}

/// Returns the 1-based line and column (in characters) of the byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        let cases = [
            (0, (1, 1)),
            (4, (1, 5)),
            (6, (2, 1)),
            (11, (2, 5)),
            (99, (3, 1)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_and_column(text, offset), expected, "offset {offset}");
        }
    }
}
