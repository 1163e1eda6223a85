//! A PostgreSQL role per worktree: the worktree's `DATABASE_URL` logs in as a role of its own
//! that owns its database and everything in it, and no other worktree's role may connect to
//! that database (`CONNECT` is revoked from PUBLIC). Where the server checks passwords (scram,
//! md5) or peers, one agent cannot reach another's database; under `trust` authentication any
//! client may name any role, so the roles then only keep honest agents apart, but `CONNECT`
//! is still checked for the role a client names.

use std::io::Read;

use postgres::Client;
use wt_common::Error;

/// A fresh password: 24 random bytes from the kernel, hex.
pub fn new_password() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::env("no-randomness", format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The worktree's URL: the server's, naming database `db` and logging in as `role`. User and
/// password go in the query (`?user=…&password=…`), where they also override what a URL
/// without a host (`postgres:///app`) could not hold as `user:password@`.
pub fn worktree_url(server: &url::Url, db: &str, role: &str, password: &str) -> String {
    let mut url = server.clone();
    url.set_path(&format!("/{db}"));
    let keep: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "user" && k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    url.query_pairs_mut().extend_pairs(keep).append_pair("user", role).append_pair("password", password);
    url.to_string()
}

/// Creates the role (or sets its password to the ledger's), able to log in, nothing more.
pub fn ensure_role(client: &mut Client, role: &str, password: &str) -> Result<(), Error> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .map_err(|e| fail("looking up role", role, &e))?
        .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    let sql = format!("{verb} ROLE {} LOGIN PASSWORD {}", ident(role), literal(password));
    match client.batch_execute(&sql) {
        Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_OBJECT) => {
            ensure_role(client, role, password) // another wt-env made it meanwhile
        }
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => Err(Error::failed(
            "database-failed",
            format!(
                "creating role {role}: {} (each worktree gets a role of its own: the server user needs CREATEROLE)",
                e.as_db_error().map(|d| d.message()).unwrap_or("permission denied")
            ),
        )),
        r => r.map_err(|e| fail("creating role", role, &e)),
    }
}

/// Gives the database to the role and keeps every other role out of it: run as the server
/// user, connected to the new database itself. Its schemas and relations (cloned from the
/// template, owned by whoever owns the template's) are handed over too, so the agent can
/// migrate its own schema.
pub fn hand_over(client: &mut Client, db: &str, role: &str) -> Result<(), Error> {
    let r = literal(role);
    let sql = format!(
        "ALTER DATABASE {db_id} OWNER TO {role_id};
         REVOKE ALL ON DATABASE {db_id} FROM PUBLIC;
         DO $wt$ DECLARE x record; BEGIN
           FOR x IN SELECT nspname FROM pg_namespace
                    WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP
             EXECUTE format('ALTER SCHEMA %I OWNER TO %I', x.nspname, {r});
           END LOOP;
           FOR x IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
                      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                      AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e')) LOOP
             EXECUTE format('ALTER TABLE %s OWNER TO %I', x.rel, {r});
           END LOOP;
         END $wt$;",
        db_id = ident(db),
        role_id = ident(role),
    );
    client.batch_execute(&sql).map_err(|e| fail("handing over database", db, &e))
}

/// Drops the role (after its database: a role that owns one cannot be dropped).
pub fn drop_role(client: &mut Client, role: &str) -> Result<(), Error> {
    client.batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(role))).map_err(|e| fail("dropping role", role, &e))
}

fn fail(doing: &str, what: &str, e: &postgres::Error) -> Error {
    let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string().replace('\n', " "));
    Error::failed("database-failed", format!("{doing} {what}: {why}"))
}

/// A quoted SQL identifier: `"name"`, with inner quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string: `'text'`, with inner quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_logs_in_as_the_role_whatever_user_the_server_url_named() {
        let server = url::Url::parse("postgres:///app?host=/tmp/s&user=admin&password=x").unwrap();
        let url = worktree_url(&server, "app_wt2", "app_wt2", "secret");
        assert_eq!(url, "postgres:///app_wt2?host=%2Ftmp%2Fs&user=app_wt2&password=secret");
        let parsed: postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_user(), Some("app_wt2"));
        assert_eq!(parsed.get_password(), Some(&b"secret"[..]));
    }

    #[test]
    fn passwords_are_fresh() {
        let (a, b) = (new_password().unwrap(), new_password().unwrap());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }
}
