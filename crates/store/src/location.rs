//! Where a store lives: a data directory (SQLite) or a PostgreSQL server.

use std::fmt;
use std::path::{Path, PathBuf};

/// The SQLite database file's name inside a data directory.
pub const SQLITE_FILE_NAME: &str = "mta-sts.db";

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A data directory: the store is the SQLite file [`SQLITE_FILE_NAME`] inside it, created
    /// with the directory when missing.
    DataDirectory(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// Reads a location as a user gives it (`--database` or `--data-dir`): a `postgres://` or
    /// `postgresql://` URL names a PostgreSQL database, anything else a data directory.
    pub fn parse(text: &str) -> Self {
        if is_postgres_url(text) {
            Self::Postgres(text.to_owned())
        } else {
            Self::DataDirectory(PathBuf::from(text))
        }
    }

    /// The SQLite file of a data directory location.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self {
            Self::DataDirectory(dir) => Some(dir.join(SQLITE_FILE_NAME)),
            Self::Postgres(_) => None,
        }
    }
}

impl From<PathBuf> for Location {
    fn from(dir: PathBuf) -> Self {
        Self::DataDirectory(dir)
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Self {
        Self::DataDirectory(dir.to_owned())
    }
}

/// Shows a PostgreSQL URL without its password, so it can go in logs and error messages.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataDirectory(dir) => write!(f, "{}", dir.join(SQLITE_FILE_NAME).display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

fn is_postgres_url(text: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    })
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_name_postgres() {
        assert_eq!(
            Location::parse("postgres://db/x"),
            Location::Postgres("postgres://db/x".to_owned())
        );
        assert_eq!(
            Location::parse("PostgreSQL://db/x"),
            Location::Postgres("PostgreSQL://db/x".to_owned())
        );
    }

    #[test]
    fn anything_else_is_a_data_directory() {
        assert_eq!(
            Location::parse("/var/lib/mta-sts"),
            Location::DataDirectory(PathBuf::from("/var/lib/mta-sts"))
        );
        assert_eq!(
            Location::parse("postgres"),
            Location::DataDirectory(PathBuf::from("postgres"))
        );
    }

    #[test]
    fn display_hides_the_password() {
        let location = Location::parse("postgres://app:s3cret@db.example:5432/mta?sslmode=require");
        assert_eq!(
            location.to_string(),
            "postgres://app:***@db.example:5432/mta?sslmode=require"
        );
        assert_eq!(
            Location::parse("postgres://app@db/mta").to_string(),
            "postgres://app@db/mta"
        );
    }
}
