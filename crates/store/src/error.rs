//! What can go wrong opening or using a store.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The location is neither a usable directory path nor a `postgres://` URL.
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data directory could not be created.
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Connecting to the database failed.
    Connect {
        /// Which database: the SQLite file or the PostgreSQL URL without its password.
        database: String,
        /// What the driver said.
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied (for example, the database was written by a
    /// newer version of this program).
    Migrate {
        /// What the migrator said.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    Database {
        /// What the store was doing, such as `insert raw report`.
        operation: &'static str,
        /// What the driver said.
        source: sqlx::Error,
    },
    /// A stored value could not be read back (the database was edited by hand or is damaged).
    Corrupt {
        /// Which value, such as `report_policies.mx_host`.
        what: &'static str,
        /// Why it could not be read.
        reason: String,
    },
    /// The store's writer has stopped (the store is closing, or the writer task panicked);
    /// the write was not committed.
    WriterStopped,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLocation { location, reason } => write!(
                f,
                "cannot use {location:?} as a store: {reason}; give a data directory or a \
                 postgres:// URL"
            ),
            Self::CreateDirectory { path, source } => {
                write!(
                    f,
                    "cannot create data directory {}: {source}",
                    path.display()
                )
            }
            Self::Connect { database, source } => {
                write!(f, "cannot open database {database}: {source}")
            }
            Self::Migrate { source } => {
                write!(f, "cannot bring the database schema up to date: {source}")
            }
            Self::Database { operation, source } => {
                write!(f, "database error ({operation}): {source}")
            }
            Self::Corrupt { what, reason } => {
                write!(f, "stored value {what} cannot be read: {reason}")
            }
            Self::WriterStopped => {
                f.write_str("the store's writer has stopped; the write was not committed")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::CreateDirectory { source, .. } => Some(source),
            Self::Connect { source, .. } | Self::Database { source, .. } => Some(source),
            Self::Migrate { source } => Some(source),
            Self::InvalidLocation { .. } | Self::Corrupt { .. } | Self::WriterStopped => None,
        }
    }
}

/// Wraps a driver error with what the store was doing.
pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { operation, source }
}
