//! Where a store lives: a data directory (SQLite) or a PostgreSQL server.

use std::fmt;
use std::path::{Path, PathBuf};

/// The SQLite database file's name inside a data directory.
pub const SQLITE_FILE_NAME: &str = "mta-sts.db";

/// Where a store lives. Both [`Display`](fmt::Display) and [`Debug`](fmt::Debug) hide a
/// PostgreSQL password, so a location can go in any log line or error message.
#[derive(Clone, PartialEq, Eq)]
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

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataDirectory(dir) => f.debug_tuple("DataDirectory").field(dir).finish(),
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&redact_password(url))
                .finish(),
        }
    }
}

fn is_postgres_url(text: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    })
}

/// A PostgreSQL URL with every password replaced by `***`: the one in the user information
/// (`postgres://user:secret@host/db`) and any query parameter whose name ends in `password`
/// (`?password=secret`, `&sslpassword=secret`, as libpq and sqlx accept them).
///
/// Errs on the side of hiding: the user information is everything before the last `@` ahead
/// of the query, so a password holding an unencoded `/` or `@` is hidden all the same.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (head, query) = match rest.find(['?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let mut out = format!("{scheme}://");
    match head.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(head),
    }
    let Some(params) = query.strip_prefix('?') else {
        out.push_str(query);
        return out;
    };
    out.push('?');
    let (params, fragment) = match params.find('#') {
        Some(at) => params.split_at(at),
        None => (params, ""),
    };
    let params: Vec<String> = params
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out.push_str(fragment);
    out
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

    #[test]
    fn query_passwords_are_hidden_too() {
        assert_eq!(
            redact_password("postgres://app@db/mta?sslmode=require&password=s3cret"),
            "postgres://app@db/mta?sslmode=require&password=***"
        );
        assert_eq!(
            redact_password("postgresql://db/mta?PassWord=a&sslpassword=b&user=app#x"),
            "postgresql://db/mta?PassWord=***&sslpassword=***&user=app#x"
        );
    }

    #[test]
    fn a_password_with_a_slash_or_at_sign_is_hidden_whole() {
        assert_eq!(
            redact_password("postgres://app:pa/ss@wo@rd@db:5432/mta"),
            "postgres://app:***@db:5432/mta"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let location = Location::parse("postgres://app:s3cret@db/mta?password=other");
        let debug = format!("{location:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("other"),
            "{debug}"
        );
    }
}
