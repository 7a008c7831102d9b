//! Running each store test case on each backend: every case runs against SQLite, and against
//! PostgreSQL when `MTA_STS_TEST_POSTGRES_URL` names a server where the test may create
//! databases (`scripts/pg-test.sh` starts one). A PostgreSQL case without that variable says
//! SKIPPED on the terminal; with `MTA_STS_REQUIRE_POSTGRES=1` it fails instead.

use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use mta_sts_store::Location;
use sqlx::{Connection, Executor, PgConnection};

/// Defines `sqlite::CASE` and `postgres::CASE` tests that run each `CASE(Location)`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Backend::Sqlite, stringify!($case), super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Backend::Postgres, stringify!($case), super::$case).await;
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite data directory.
    Sqlite,
    /// A database of its own on the PostgreSQL server.
    Postgres,
}

const POSTGRES_URL_VARIABLE: &str = "MTA_STS_TEST_POSTGRES_URL";
const REQUIRE_POSTGRES_VARIABLE: &str = "MTA_STS_REQUIRE_POSTGRES";

/// Gives `case` a fresh, empty store location on `backend`, and removes it afterwards.
pub async fn run<F, Fut>(backend: Backend, name: &str, case: F)
where
    F: FnOnce(Location) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            case(Location::DataDirectory(dir.path().join("data"))).await;
        }
        Backend::Postgres => {
            let Some(server) = std::env::var(POSTGRES_URL_VARIABLE)
                .ok()
                .filter(|url| !url.is_empty())
            else {
                assert!(
                    std::env::var_os(REQUIRE_POSTGRES_VARIABLE).is_none(),
                    "{REQUIRE_POSTGRES_VARIABLE} is set but {POSTGRES_URL_VARIABLE} is not"
                );
                // Straight to the terminal: the test harness hides what passing tests print.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED postgres::{name}: {POSTGRES_URL_VARIABLE} is not set \
                     (scripts/pg-test.sh runs this suite against a throwaway PostgreSQL)"
                );
                return;
            };
            let database = TestDatabase::create(&server, name).await;
            case(Location::Postgres(database.url.clone())).await;
            database.drop_database().await;
        }
    }
}

/// A database of its own for one case on the PostgreSQL server.
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(server: &str, case: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut name = format!(
            "mta_sts_{}_{}_{case}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        name.truncate(63);
        let mut admin = PgConnection::connect(server)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {POSTGRES_URL_VARIABLE}: {error}"));
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(server, &name);
        Self {
            server: server.to_owned(),
            name,
            url,
        }
    }

    async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("reconnect to drop the test database");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{}\" WITH (FORCE)",
                self.name
            )))
            .await
            .expect("drop test database");
    }
}

/// `postgres://user@host:port/db?params` with `db` replaced by `database`.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    format!("{}/{database}{query}", &base[..path_start])
}

#[test]
fn postgres_url_gets_the_test_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
        "postgres://u:p@h/t2?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
}
