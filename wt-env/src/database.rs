//! A database per worktree: a PostgreSQL database cloned from a template
//! (`CREATE DATABASE app_wt2 TEMPLATE app`), or a copy of a SQLite file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use wt_common::Error;

use wt_common::ledger::lease::DbLease;

use crate::pg_role;

/// What `--database URL` asks for.
#[derive(Debug, Clone)]
pub enum DbSpec {
    /// `postgres://…/NAME`: clone NAME for each worktree.
    Postgres { url: url::Url, template: String },
    /// `sqlite:///path/file.db`: copy the file into each worktree.
    Sqlite { file: PathBuf },
}

impl DbSpec {
    pub fn parse(text: &str) -> Result<DbSpec, Error> {
        let bad = |why: &str| {
            Error::usage(
                "bad-database-url",
                format!("--database '{text}': {why} (e.g. postgres://localhost/app or sqlite:///abs/path/app.db)"),
            )
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "postgres" | "postgresql" => {
                let template = url.path().trim_start_matches('/').to_string();
                if template.is_empty() || template.contains('/') {
                    return Err(bad("the URL must name the template database, as its path"));
                }
                let template = percent_decode(&template);
                // The worktree's name adds `_wt<index>`; PostgreSQL cuts names at 63 bytes.
                if template.len() > 55 {
                    return Err(bad("the database name must be at most 55 bytes"));
                }
                postgres::Config::from_str(text).map_err(|e| bad(&e.to_string()))?;
                Ok(DbSpec::Postgres { url, template })
            }
            "sqlite" => {
                let file = PathBuf::from(percent_decode(url.path()));
                if !file.is_absolute() || url.path().ends_with('/') {
                    return Err(bad("a sqlite URL needs an absolute file path: sqlite:///abs/path/app.db"));
                }
                Ok(DbSpec::Sqlite { file })
            }
            other => Err(bad(&format!("unsupported scheme '{other}' (postgres or sqlite)"))),
        }
    }

    /// The lease this worktree will get, before it is provisioned. A PostgreSQL database gets
    /// a role of its own (named like it) with a fresh password.
    pub fn lease_for(&self, index: u32, worktree: &Path, main: Option<&Path>) -> Result<DbLease, Error> {
        Ok(match self {
            DbSpec::Postgres { url, template } => {
                let name = format!("{template}_wt{index}");
                let role = name.clone();
                // The worktree's URL names the server wt-env found through PGHOST/PGPORT, so it
                // works in a shell without them.
                let mut server = url.clone();
                explicit_server(&mut server, std::env::var("PGHOST").ok(), std::env::var("PGPORT").ok());
                DbLease {
                    kind: "postgres".into(),
                    url: pg_role::worktree_url(&server, &name, &role, &pg_role::new_password()?),
                    name,
                    provisioned: false,
                    role: Some(role),
                    server_url: Some(url.to_string()),
                    creating: false,
                }
            }
            DbSpec::Sqlite { file } => {
                let dest = sqlite_destination(file, worktree, main);
                DbLease {
                    kind: "sqlite".into(),
                    name: dest.display().to_string(),
                    url: format!("sqlite://{}", dest.display()),
                    provisioned: false,
                    role: None,
                    server_url: None,
                    creating: false,
                }
            }
        })
    }

    /// Whether `held` is the lease this spec would give (so it is kept, password and all).
    pub fn matches(&self, held: &DbLease, wanted: &DbLease) -> bool {
        match self {
            DbSpec::Postgres { .. } => {
                held.name == wanted.name && held.role == wanted.role && held.server_url == wanted.server_url
            }
            DbSpec::Sqlite { .. } => held.name == wanted.name && held.url == wanted.url,
        }
    }

    /// Whether the lease's PostgreSQL database exists already (a SQLite copy is always the
    /// worktree's own: `false`).
    pub fn exists(&self, lease: &DbLease) -> Result<bool, Error> {
        match self {
            DbSpec::Postgres { url, .. } => {
                let mut client = connect(url.as_str(), "postgres")?;
                let found = client
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&lease.name])
                    .map_err(|e| pg_error("looking up", &lease.name, &e))?;
                Ok(found.is_some())
            }
            DbSpec::Sqlite { .. } => Ok(false),
        }
    }

    /// Makes the database exist. Idempotent: an existing database or file is kept as it is;
    /// whether an existing PostgreSQL database may be taken is the caller's to judge first
    /// (`exists`, and the ledger).
    pub fn provision(&self, lease: &mut DbLease, worktree: &Path) -> Result<(), Error> {
        match self {
            DbSpec::Postgres { url, template } => create_pg(url, template, lease)?,
            DbSpec::Sqlite { file } => copy_sqlite(file, worktree, Path::new(&lease.name))?,
        }
        lease.provisioned = true;
        lease.creating = false;
        Ok(())
    }
}

/// Writes into a URL that leaves out its server the one found through `PGHOST`/`PGPORT`, as
/// wt-env itself found it: the worktree's `DATABASE_URL` must work in a shell without them.
/// A socket directory goes in as `?host=/dir` (libpq's form); a host name as the URL's host.
fn explicit_server(url: &mut url::Url, pghost: Option<String>, pgport: Option<String>) {
    let has_query = |key: &str| url.query_pairs().any(|(k, _)| k == key);
    let hostless = url.host_str().is_none_or(str::is_empty) && !has_query("host");
    let Some(host) = pghost.filter(|h| !h.is_empty() && hostless) else { return };
    let port = pgport.filter(|p| p.parse::<u16>().is_ok() && url.port().is_none() && !has_query("port"));
    if host.starts_with('/') {
        url.query_pairs_mut().append_pair("host", &host);
        if let Some(p) = port {
            url.query_pairs_mut().append_pair("port", &p);
        }
    } else if url.set_host(Some(&host)).is_ok() {
        if let Some(p) = port.and_then(|p| p.parse().ok()) {
            let _ = url.set_port(Some(p));
        }
    }
}

/// Drops a leased database (postgres) or deletes its copy (sqlite).
pub fn drop_database(lease: &DbLease) -> Result<(), Error> {
    match lease.kind.as_str() {
        "postgres" => {
            let mut client = connect(lease.server_url.as_deref().unwrap_or(&lease.url), "postgres")?;
            if lease.creating {
                end_creation(&mut client, &lease.name)?;
            }
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg_role::ident(&lease.name));
            client.batch_execute(&sql).map_err(|e| pg_error("dropping", &lease.name, &e))?;
            match &lease.role {
                Some(role) => pg_role::drop_role(&mut client, role),
                None => Ok(()),
            }
        }
        _ => match std::fs::remove_file(&lease.name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&lease.name, e)),
            _ => Ok(()),
        },
    }
}

/// The bytes a database takes on disk, when that is cheap to learn (one query to its server,
/// or the size of the SQLite file, never through a link); `None` when it cannot be.
pub fn size(lease: &DbLease) -> Option<u64> {
    match lease.kind.as_str() {
        "postgres" => {
            let mut client = connect(lease.server_url.as_deref().unwrap_or(&lease.url), "postgres").ok()?;
            let row = client
                .query_opt("SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1", &[&lease.name])
                .ok()??;
            row.get::<_, i64>(0).try_into().ok()
        }
        _ => std::fs::symlink_metadata(&lease.name).ok().filter(|m| m.is_file()).map(|m| m.len()),
    }
}

/// How long a `CREATE DATABASE` left by a killed wt-env gets to end once told to.
const CREATION_END: Duration = Duration::from_secs(10);

/// Ends a `CREATE DATABASE` of `name` that a killed wt-env left running on the server: the
/// server finishes a statement whose client died, so a database dropped (`IF EXISTS`: not there
/// yet) while it is still being made would appear afterwards, with no lease to say whose it is,
/// under a name the next worktree of that index is given. Its backend is ended (the creation
/// is rolled back) and waited for.
fn end_creation(client: &mut postgres::Client, name: &str) -> Result<(), Error> {
    let start = format!("CREATE DATABASE {} ", pg_role::ident(name));
    let running = "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND left(query, length($1)) = $1";
    let deadline = std::time::Instant::now() + CREATION_END;
    loop {
        let pids: Vec<i32> = client
            .query(running, &[&start])
            .map_err(|e| pg_error("looking for the creation of", name, &e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::failed(
                "database-busy",
                format!(
                    "database {name} is still being created by server process {pids:?}; try again when it has ended"
                ),
            ));
        }
        for pid in pids {
            let _ = client.execute("SELECT pg_terminate_backend($1)", &[&pid]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file inside the main worktree goes to the same place in the worktree; one elsewhere goes
/// to the worktree's root.
fn sqlite_destination(file: &Path, worktree: &Path, main: Option<&Path>) -> PathBuf {
    match main.and_then(|m| file.strip_prefix(m).ok()) {
        Some(rel) => worktree.join(rel),
        None => worktree.join(file.file_name().unwrap_or_default()),
    }
}

/// Makes git ignore a worktree's SQLite copy, as it ignores the env file: the copy, the files
/// SQLite keeps beside it (`-journal`, `-wal`, `-shm`) and the temp file it is copied through.
/// Without this, `git status` shows the copy and `git add -A` commits the database. Done before
/// the copy is made, so a killed wt-env leaves nothing git would pick up.
pub fn exclude_sqlite_copy(repo: &wt_common::git::repo::Repo, worktree: &Path, lease: &DbLease) -> Result<(), Error> {
    if lease.kind != "sqlite" {
        return Ok(());
    }
    let Ok(rel) = Path::new(&lease.name).strip_prefix(worktree) else { return Ok(()) };
    let rel = rel.to_string_lossy();
    for suffix in ["", "-journal", "-wal", "-shm"] {
        wt_common::git::ignore::exclude(repo, &format!("{rel}{suffix}"))?;
    }
    let temps = Path::new(rel.as_ref()).with_file_name(wt_common::fs::temp_pattern(Path::new(&lease.name)));
    wt_common::git::ignore::exclude(repo, &temps.to_string_lossy())
}

/// Copies the SQLite file into the worktree, never through a link the agent planted there,
/// and never over a file that is there already (the worktree's own data).
fn copy_sqlite(src: &Path, worktree: &Path, dest: &Path) -> Result<(), Error> {
    let rel = dest.strip_prefix(worktree).map_err(|_| {
        Error::failed(
            "outside-worktree",
            format!("{} is not inside the worktree {}", dest.display(), worktree.display()),
        )
    })?;
    wt_common::fs::inside::copy_new(worktree, rel, src).map(|_| ()).map_err(|e| match e.code.as_str() {
        "outside-worktree" => e,
        _ if !src.is_file() => {
            Error::failed("database-missing", format!("the SQLite file {} does not exist", src.display()))
        }
        _ => Error::failed("database-copy", format!("copying {} to {}: {}", src.display(), dest.display(), e.message)),
    })
}

fn create_pg(url: &url::Url, template: &str, lease: &DbLease) -> Result<(), Error> {
    let name = lease.name.as_str();
    let mut client = connect(url.as_str(), "postgres")?;
    if let Some(role) = &lease.role {
        let password = postgres::Config::from_str(&lease.url).ok().and_then(|c| c.get_password().map(<[u8]>::to_vec));
        pg_role::ensure_role(&mut client, role, &String::from_utf8_lossy(&password.unwrap_or_default()))?;
    }
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .map_err(|e| pg_error("looking up", name, &e))?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE {} TEMPLATE {}", pg_role::ident(name), pg_role::ident(template));
        match client.batch_execute(&sql) {
            Ok(()) => {}
            // Another wt-env made it between our look-up and now.
            Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(pg_error("creating", name, &e)),
        }
    }
    match &lease.role {
        Some(role) => pg_role::hand_over(&mut connect(url.as_str(), name)?, name, role),
        None => Ok(()),
    }
}

/// A database of that name exists and was not made by this lease: it is never handed out.
pub fn exists_error(name: &str) -> Error {
    Error::failed(
        "database-exists",
        format!("database {name} exists but was not made for this worktree; drop it (`DROP DATABASE {name}`, or `wt-env --gc --drop-database` if a removed worktree kept it) or use another --database"),
    )
}

/// Connects to the server of `url`, to database `dbname` (the `postgres` maintenance database,
/// or a worktree's). Whatever the URL leaves out comes from the usual variables (PGHOST,
/// PGPORT, PGUSER, PGPASSWORD), as libpq would take it.
fn connect(url: &str, dbname: &str) -> Result<postgres::Client, Error> {
    let mut config = postgres::Config::from_str(url)
        .map_err(|e| Error::usage("bad-database-url", format!("--database '{url}': {e}")))?;
    if config.get_hosts().is_empty() {
        match std::env::var("PGHOST") {
            Ok(h) if h.starts_with('/') => config.host_path(h),
            Ok(h) if !h.is_empty() => config.host(&h),
            _ => config.host_path("/var/run/postgresql"),
        };
    }
    if config.get_ports().is_empty() {
        if let Some(port) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".into());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw);
        }
    }
    config.dbname(dbname).connect_timeout(Duration::from_secs(5));
    config.connect(postgres::NoTls).map_err(|e| {
        Error::failed(
            "database-unavailable",
            format!("cannot connect to the PostgreSQL server of {url}: {} (is it running?)", one_line(&e)),
        )
    })
}

fn pg_error(doing: &str, name: &str, e: &postgres::Error) -> Error {
    Error::failed("database-failed", format!("{doing} database {name}: {}", one_line(e)))
}

fn one_line(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string().replace('\n', " "),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.replace('+', "%2B").as_bytes()).map(|(k, _)| k.into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_and_sqlite_urls_and_refuses_the_rest() {
        assert!(
            matches!(DbSpec::parse("postgres://u@localhost:5432/app").unwrap(), DbSpec::Postgres { template, .. } if template == "app")
        );
        assert!(
            matches!(DbSpec::parse("sqlite:///tmp/x/app.db").unwrap(), DbSpec::Sqlite { file } if file == Path::new("/tmp/x/app.db"))
        );
        for bad in [
            "nonsense",
            "mysql://h/db",
            "postgres://localhost",
            "postgres://localhost/",
            "sqlite://rel.db",
            "sqlite:///dir/",
        ] {
            assert_eq!(DbSpec::parse(bad).unwrap_err().code, "bad-database-url", "{bad}");
        }
    }

    #[test]
    fn the_worktree_url_names_its_own_database() {
        let spec = DbSpec::parse("postgres://me@localhost/app?host=/tmp/sock").unwrap();
        let lease = spec.lease_for(3, Path::new("/w/a"), None).unwrap();
        assert_eq!(lease.name, "app_wt3");
        assert_eq!(lease.role.as_deref(), Some("app_wt3"));
        let config: postgres::Config = lease.url.parse().unwrap();
        assert_eq!(config.get_dbname(), Some("app_wt3"));
        assert_eq!(config.get_user(), Some("app_wt3"));
        assert!(config.get_password().is_some_and(|p| p.len() == 48));
    }

    #[test]
    fn a_url_without_its_server_gets_the_one_pghost_names() {
        let with = |url: &str, host: Option<&str>, port: Option<&str>| {
            let mut u = url::Url::parse(url).unwrap();
            explicit_server(&mut u, host.map(str::to_string), port.map(str::to_string));
            u.to_string()
        };
        assert_eq!(with("postgres:///app_wt2", Some("/tmp/pg"), None), "postgres:///app_wt2?host=%2Ftmp%2Fpg");
        assert_eq!(
            with("postgres:///app_wt2", Some("/tmp/pg"), Some("5433")),
            "postgres:///app_wt2?host=%2Ftmp%2Fpg&port=5433"
        );
        assert_eq!(with("postgres:///app_wt2", Some("db.local"), Some("5433")), "postgres://db.local:5433/app_wt2");
        assert_eq!(
            with("postgres://h/app_wt2", Some("/tmp/pg"), None),
            "postgres://h/app_wt2",
            "the URL's own host wins"
        );
        assert_eq!(with("postgres:///app_wt2?host=/s", Some("/tmp/pg"), None), "postgres:///app_wt2?host=/s");
        assert_eq!(with("postgres:///app_wt2", None, Some("5433")), "postgres:///app_wt2");
    }
}
