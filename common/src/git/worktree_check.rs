//! Which worktree a path is, by git's registration in the common dir, never by a file the
//! agent working in it could have written.
//!
//! A linked worktree is tied to the repository by four files: its `.git` file (`gitdir: …`,
//! in the worktree), and in its admin dir `<common>/worktrees/<id>/` the `gitdir` back-pointer,
//! `commondir` and, with `extensions.worktreeConfig`, `config.worktree`. An agent can rewrite
//! all of them: a `.git` file saying `gitdir: /`, a `gitdir` naming another agent's worktree, a
//! `commondir` or `config.worktree` that plants `core.fsmonitor`. So before a tool acts on a
//! worktree it asks `verify`, which finds the admin dir from what the agent cannot change (the
//! admin dir's own name in the common dir, and the other worktrees' agreement), restores the
//! back-pointers when the right value is certain, and refuses (`tampered-worktree`, naming the
//! file) when it is not.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fs::canonical;
use crate::git::repo::Repo;
use crate::ledger::LedgerFile;

/// A worktree as git registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The worktree directory (canonical).
    pub path: PathBuf,
    /// Its admin dir: `<common>/worktrees/<id>`, or the common dir for the main worktree.
    pub admin_dir: PathBuf,
    /// The repository's common dir, where its config, refs and objects live.
    pub common_dir: PathBuf,
    /// The branch its HEAD names (short form), `None` when detached.
    pub branch: Option<String>,
    /// The commit its HEAD names, when HEAD is detached (a branch's commit is in its ref).
    pub detached_head: Option<String>,
}

/// Keys git itself writes into a worktree's `config.worktree` (sparse checkout) and harmless
/// identity keys; anything else could run code (`core.fsmonitor`, drivers, `*.command`) or
/// point git elsewhere (`core.worktree`, `include.path`), so a file with it is refused.
const WORKTREE_CONFIG_ALLOWED: &[&str] =
    &["core.sparsecheckout", "core.sparsecheckoutcone", "core.bare", "index.sparse", "user.name", "user.email"];

/// The worktree at `path`, checked (and, where the right value is certain, repaired) against
/// git's registration and the ledger. Errors: `worktree-missing`, `not-a-worktree`,
/// `tampered-worktree`.
pub fn verify(repo: &Repo, path: &Path) -> Result<Registered, Error> {
    if let Some(done) = verify_if_agreed(repo, path) {
        return done;
    }
    let path = canonical(path).map_err(|_| missing(path))?;
    let common = &repo.common_dir;
    // Only a worktree the ledger names is repaired: a path from a record could be any
    // directory, and repairing would write git's files into it.
    let trusted = || Ok::<_, Error>(managed_paths(repo)?.contains(&path));
    if !trusted()? {
        return Err(not_a_worktree(&path));
    }
    let admin = find_admin(common, &path, &scan(common))?;
    repair_pointers(common, &path, &admin, false, &trusted)?;
    check_worktree_config(common, &admin)?;
    check_admin_files(&admin)?;
    Ok(registered(repo, path, admin))
}

/// `verify` of a worktree whose `.git` file and admin dir name each other, as git left them
/// (the usual case, checked cheaply); `None` for any other, which needs `verify`'s search and
/// repairs. It repairs nothing but that admin dir's own files, so it may run beside other such
/// checks: no two worktrees can agree with the same admin dir.
pub fn verify_if_agreed(repo: &Repo, path: &Path) -> Option<Result<Registered, Error>> {
    let Ok(path) = canonical(path) else { return Some(Err(missing(path))) };
    let common = &repo.common_dir;
    if repo.main_worktree.as_deref() == Some(path.as_path()) || path == *common {
        return Some(Ok(registered(repo, path, common.clone())));
    }
    let admin = pointed_admin(common, &path).filter(|a| claims(a, &path))?;
    let trusted = || Ok::<_, Error>(managed_paths(repo)?.contains(&path));
    let checked = repair_pointers(common, &path, &admin, true, &trusted)
        .and_then(|()| check_worktree_config(common, &admin))
        .and_then(|()| check_admin_files(&admin));
    Some(checked.map(|()| registered(repo, path, admin)))
}

/// Before git is asked to act on the worktree at `reg.path` by its path (`git worktree
/// remove`): another admin dir whose `gitdir` names the same worktree would make git pick
/// either. Such a claim is put back when a managed worktree is the one git named that admin
/// dir for; otherwise wt refuses.
pub fn refuse_foreign_claims(repo: &Repo, reg: &Registered) -> Result<(), Error> {
    let admins = scan(&repo.common_dir);
    repair_foreign_claims(&repo.common_dir, &reg.path, &reg.admin_dir, &admins, &managed_paths(repo)?)
}

/// The worktrees of the ledger, canonical.
fn managed_paths(repo: &Repo) -> Result<Vec<PathBuf>, Error> {
    let ledger = LedgerFile::new(&repo.state_dir()).read()?;
    Ok(ledger.worktrees.values().filter_map(|e| canonical(&e.path).ok()).collect())
}

/// Whether the admin dir's `gitdir` names `path`, in a form `strict_target` takes.
fn claims(admin: &Path, path: &Path) -> bool {
    claimed_worktree(admin).as_deref() == Some(path)
}

/// `worktree-missing`: the directory is gone.
pub fn missing(path: &Path) -> Error {
    Error::failed(
        "worktree-missing",
        format!(
            "the worktree directory {} does not exist (removed? `wt-env --gc` releases its leases)",
            path.display()
        ),
    )
}

fn not_a_worktree(path: &Path) -> Error {
    Error::failed(
        "not-a-worktree",
        format!("{} is not a worktree of this repository (see `wt-create --list`)", path.display()),
    )
}

fn tampered(file: &Path, why: &str) -> Error {
    tampered_fix(file, why, "`git worktree repair`, or remove the file")
}

/// `tampered-worktree`, saying how to restore the file.
fn tampered_fix(file: &Path, why: &str, fix: &str) -> Error {
    Error::failed(
        "tampered-worktree",
        format!("{} {why}; wt will not act on this worktree until it is restored ({fix})", file.display()),
    )
}

/// One admin dir of `<common>/worktrees`, with the worktree its `gitdir` claims.
struct Admin {
    dir: PathBuf,
    claims: Option<PathBuf>,
}

/// Every admin dir (real directories only: a symlink there is not git's).
fn scan(common: &Path) -> Vec<Admin> {
    let Ok(entries) = fs::read_dir(common.join("worktrees")) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let dir = e.path();
            let claims = claimed_worktree(&dir);
            Admin { dir, claims }
        })
        .collect()
}

/// The worktree directory an admin dir's `gitdir` names (it names `<worktree>/.git`), when it
/// is written the way git writes it (`strict_target`).
fn claimed_worktree(admin: &Path) -> Option<PathBuf> {
    let text = read_small(&admin.join("gitdir"))?;
    let text = one_line(&text)?;
    // git before 2.48 reads a relative `gitdir` from wherever it runs, not from the admin dir:
    // such a path is taken only where git says it writes them (and older git stops).
    let common = admin.parent()?.parent()?;
    if !text.starts_with('/') && !relative_worktrees(common) {
        return None;
    }
    // The worktree, not its `.git` (which may be missing, to be restored).
    strict_target(admin, text.strip_suffix("/.git")?)
}

/// The admin dir a worktree's `.git` file points at, when it is a regular file saying exactly
/// `gitdir: <dir>` (one line, `\n`-terminated or not) with `<dir>` a directory directly in
/// `<common>/worktrees`, named as `strict_target` requires.
fn pointed_admin(common: &Path, worktree: &Path) -> Option<PathBuf> {
    let dot_git = worktree.join(".git");
    if !fs::symlink_metadata(&dot_git).ok()?.is_file() {
        return None;
    }
    let text = read_small(&dot_git)?;
    let target = strict_target(worktree, one_line(&text)?.strip_prefix("gitdir: ")?)?;
    (target.parent()? == common.join("worktrees") && target.is_dir()).then_some(target)
}

/// Whether the repository's config (not the agent's to write) sets
/// `extensions.relativeWorktrees`, which git 2.48 and later set when they write relative
/// paths into `gitdir`, and which older git refuses to work with.
fn relative_worktrees(common: &Path) -> bool {
    let config = crate::fs::read_untrusted(&common.join("config"), crate::fs::untrusted::GIT_CONFIG_MAX);
    let config = config.ok().flatten().unwrap_or_default().to_ascii_lowercase();
    config.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        l == "relativeworktrees=true" || l == "relativeworktrees"
    })
}

/// The text of a one-line pointer file: without its one trailing `\n`, and with no other line
/// break or control character in it. git reads more forms than it writes (it drops a `\r\n`,
/// and stops at a NUL byte where wt would go on); wt takes only what git writes, and anything
/// else is repaired or refused, so that git and wt cannot read the same file two ways.
fn one_line(text: &str) -> Option<&str> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    (!line.is_empty() && !line.chars().any(char::is_control) && !line.starts_with('\u{feff}')).then_some(line)
}

/// The path a pointer file names, resolved against `base` (a canonical directory), when it
/// names it in one of the forms git writes: an absolute path, or a relative one made of `..`
/// steps up from `base` followed by names; no `.`, no `..` after a name, no empty component
/// (`//`, a trailing `/`), and no symbolic link on the way (the result is its own canonical
/// form). A pointer resolved through a link could be moved, without touching the pointer
/// itself, by whoever can change the link: a link inside the worktree would let the agent
/// point git at a git dir or config of its own once the run is over.
fn strict_target(base: &Path, text: &str) -> Option<PathBuf> {
    let absolute = text.starts_with('/');
    let mut out = if absolute { PathBuf::from("/") } else { base.to_path_buf() };
    let mut climbing = !absolute;
    let rest = if absolute { &text[1..] } else { text };
    for part in rest.split('/') {
        match part {
            "" | "." => return None,
            ".." if climbing => {
                if !out.pop() {
                    return None;
                }
            }
            ".." => return None,
            name => {
                climbing = false;
                out.push(name);
            }
        }
    }
    (canonical(&out).ok()? == out).then_some(out)
}

/// A regular file of at most 4 KiB, never through a symbolic link or a FIFO (`fs::read_small`).
fn read_small(file: &Path) -> Option<String> {
    crate::fs::read_small(file).text()
}

/// Whether git could have named the admin dir of a worktree called `base`: git uses the
/// worktree's directory name, with a number appended when that is taken.
fn named_for(admin: &Path, base: &str) -> bool {
    let name = admin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix(base).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// The admin dir that `path`'s `.git` file names and whose `gitdir` names `path` back: git's
/// own state, untouched.
fn agreed_admin(common: &Path, path: &Path, admins: &[Admin]) -> Option<PathBuf> {
    let pointed = pointed_admin(common, path)?;
    admins.iter().any(|a| a.dir == pointed && a.claims.as_deref() == Some(path)).then_some(pointed)
}

/// The admin dir of a worktree the ledger names. When its pointers agree, that is git's own
/// state. Otherwise the admin dirs git could have named for it (its directory name, with a
/// number appended when taken) that no other worktree holds with both pointers are the
/// candidates; if several, those its pointers also name. One is the answer; none or several
/// mean it cannot be told.
fn find_admin(common: &Path, path: &Path, admins: &[Admin]) -> Result<PathBuf, Error> {
    if let Some(a) = agreed_admin(common, path, admins) {
        return Ok(a);
    }
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pointed = pointed_admin(common, path);
    let held_elsewhere = |a: &Admin| match &a.claims {
        Some(q) if q != path => agreed_admin(common, q, admins).as_ref() == Some(&a.dir),
        _ => false,
    };
    let candidates: Vec<&Admin> = admins.iter().filter(|a| named_for(&a.dir, &base) && !held_elsewhere(a)).collect();
    let pointing: Vec<&&Admin> =
        candidates.iter().filter(|a| a.claims.as_deref() == Some(path) || Some(&a.dir) == pointed.as_ref()).collect();
    match (candidates.as_slice(), pointing.as_slice()) {
        ([one], _) => Ok(one.dir.clone()),
        (_, [one]) => Ok(one.dir.clone()),
        ([], _) => Err(not_a_worktree(path)),
        _ => Err(tampered(&path.join(".git"), "does not say which of several admin dirs is this worktree's")),
    }
}

/// Restores the worktree's `.git` file, the admin dir's `gitdir` and `commondir` to what git
/// writes, when they say anything else and `repair()` allows it; otherwise refuses. `agreed`:
/// the `.git` file and `gitdir` were just found to name each other.
fn repair_pointers(
    common: &Path,
    path: &Path,
    admin: &Path,
    agreed: bool,
    repair: &dyn Fn() -> Result<bool, Error>,
) -> Result<(), Error> {
    let fix = |file: &Path, content: String, why: &str| {
        if repair()? {
            restore(file, &content)
        } else {
            Err(tampered(file, why))
        }
    };
    let dot_git = path.join(".git");
    if fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir()) {
        return Err(tampered(&dot_git, "is a directory, not git's `gitdir:` file"));
    }
    if !agreed && pointed_admin(common, path).as_deref() != Some(admin) {
        fix(&dot_git, format!("gitdir: {}\n", admin.display()), "does not name this worktree's admin dir")?;
    }
    if !agreed && !claims(admin, path) {
        fix(&admin.join("gitdir"), format!("{}\n", dot_git.display()), "does not name this worktree")?;
    }
    // `admin` is a directory of `<common>/worktrees` (symbolic links resolved), so git's own
    // `../..` names the common dir without resolving it again.
    let commondir = admin.join("commondir");
    // Anything else git would also read there (`../..\r\n`, a path through a link the agent
    // could move) is written again as git writes it.
    let points_home = read_small(&commondir).as_deref().and_then(one_line).is_some_and(|t| {
        let worktrees = common.join("worktrees");
        (t == "../.."
            && admin.parent() == Some(&worktrees)
            && fs::symlink_metadata(&worktrees).is_ok_and(|m| m.is_dir()))
            || strict_target(admin, t).is_some_and(|c| c == common)
    });
    if !points_home {
        fix(&commondir, "../..\n".into(), "does not name this repository's common dir")?;
    }
    Ok(())
}

/// Another admin dir whose `gitdir` names this worktree makes git itself pick the wrong one
/// (`git worktree remove <path>` takes the first it finds). Its right value is known when a
/// managed worktree is the one git would have named it for; otherwise wt refuses.
fn repair_foreign_claims(
    common: &Path,
    path: &Path,
    admin: &Path,
    admins: &[Admin],
    managed: &[PathBuf],
) -> Result<(), Error> {
    for a in admins.iter().filter(|a| a.dir != admin && a.claims.as_deref() == Some(path)) {
        let owners: Vec<&PathBuf> = managed
            .iter()
            .filter(|q| q.as_path() != path && agreed_admin(common, q, admins).is_none())
            .filter(|q| named_for(&a.dir, &q.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
            .collect();
        match owners.as_slice() {
            [q] => restore(&a.dir.join("gitdir"), &format!("{}\n", q.join(".git").display()))?,
            _ => return Err(tampered(&a.dir.join("gitdir"), "claims this worktree, which is not its own")),
        }
    }
    Ok(())
}

/// Writes a git file as git would, replacing whatever is there: a symbolic link is removed
/// (not followed), and the new file is written without following links (the directory is
/// the agent's, and so is any name a temp file could have).
fn restore(file: &Path, content: &str) -> Result<(), Error> {
    tracing::warn!("{} was changed; restoring it to what git wrote", file.display());
    let cannot = |why: String| tampered(file, &format!("was changed and cannot be restored ({why})"));
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else { return Err(cannot("no name".into())) };
    if fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(file).map_err(|e| cannot(e.to_string()))?;
    }
    crate::fs::inside::write(dir, Path::new(name), content.as_bytes()).map(|_| ()).map_err(|e| cannot(e.message))
}

/// `config.worktree` may hold only what git itself puts there.
fn check_worktree_config(common: &Path, admin: &Path) -> Result<(), Error> {
    let file = admin.join("config.worktree");
    let Ok(meta) = fs::symlink_metadata(&file) else { return Ok(()) };
    if !meta.is_file() {
        return Err(tampered(&file, "is not a regular file"));
    }
    let mut cmd = crate::git::command(common);
    cmd.args(["config", "--file"]).arg(&file).args(["--no-includes", "--name-only", "--list", "-z"]);
    let out = crate::git::raw_output(&mut cmd)?;
    if !out.status.success() {
        return Err(tampered(&file, "cannot be parsed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .split('\0')
        .filter(|k| !k.is_empty())
        .find(|k| !WORKTREE_CONFIG_ALLOWED.contains(&k.to_lowercase().as_str()))
    {
        Some(key) => Err(tampered(&file, &format!("sets {key}, which wt does not allow there (it could run code)"))),
        None => Ok(()),
    }
}

/// The files of the admin dir that the agent may write (the dir stays writable in a confined
/// run) and that every later git in the worktree opens: `HEAD` (and `git worktree list`, for
/// every worktree), `index` (`git status`), `locked` (`git worktree list`). git opens them
/// following links and waiting on a FIFO, so one made a FIFO would hang wt's git, and `HEAD`
/// made a link to another file would make git read that file as this worktree's. Each must be
/// a regular file when it exists (`HEAD` one of at most 4 KiB, which is all git reads of it).
fn check_admin_files(admin: &Path) -> Result<(), Error> {
    for (name, fix) in [
        ("HEAD", "write `ref: refs/heads/<its branch>` into it"),
        ("index", "remove it and run `git reset` in the worktree"),
        ("locked", "remove it (`git worktree unlock`)"),
    ] {
        let file = admin.join(name);
        // A missing one is what a killed git leaves (no HEAD yet): git then takes the admin
        // dir for no git dir at all, and opens nothing there.
        let Ok(meta) = fs::symlink_metadata(&file) else { continue };
        if !meta.is_file() || (name == "HEAD" && meta.len() > 4096) {
            return Err(tampered_fix(&file, "is not a small regular file, as git writes it", fix));
        }
    }
    Ok(())
}

/// HEAD of a worktree, read from its admin dir.
/// A HEAD naming anything but a plain branch (`refs/heads/../..`, say: paths are built from
/// branch names) names no branch.
fn registered(repo: &Repo, path: PathBuf, admin_dir: PathBuf) -> Registered {
    let head = read_small(&admin_dir.join("HEAD")).unwrap_or_default();
    let head = head.trim_end();
    let plain =
        |b: &str| !b.is_empty() && b.split('/').all(|c| !c.is_empty() && !c.starts_with('.') && !c.contains(".."));
    let (branch, detached_head) = match head.strip_prefix("ref: ") {
        Some(r) => (r.strip_prefix("refs/heads/").filter(|b| plain(b)).map(str::to_string), None),
        None if !head.is_empty() => (None, Some(head.to_string())),
        None => (None, None),
    };
    Registered { path, admin_dir, common_dir: repo.common_dir.clone(), branch, detached_head }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Entry;

    use crate::git::test_git::git;

    /// A repository with worktrees `a/x` and `b/x` (admin dirs `x` and `x1`), both managed.
    fn two_named_alike() -> (tempfile::TempDir, Repo, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let main = root.join("repo");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q", "-b", "main"]);
        git(&main, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let (ax, bx) = (root.join("a/x"), root.join("b/x"));
        git(&main, &["worktree", "add", "-q", "-b", "ax", ax.to_str().unwrap()]);
        git(&main, &["worktree", "add", "-q", "-b", "bx", bx.to_str().unwrap()]);
        let repo = Repo::discover(&main).unwrap();
        LedgerFile::new(&repo.state_dir())
            .update(|l| {
                l.worktrees.insert("ax".into(), Entry::new(ax.clone()));
                l.worktrees.insert("bx".into(), Entry::new(bx.clone()));
                Ok(())
            })
            .unwrap();
        (t, repo, ax, bx)
    }

    #[test]
    fn a_worktree_is_told_by_the_admin_dir_git_named_for_it_and_repaired() {
        let (_t, repo, ax, bx) = two_named_alike();
        let x = repo.common_dir.join("worktrees/x");
        std::fs::write(ax.join(".git"), "gitdir: /\n").unwrap();
        std::fs::write(x.join("gitdir"), "/elsewhere/.git\n").unwrap();
        // `x1` is also named for a worktree called `x`, but b/x holds it with both pointers.
        let reg = verify(&repo, &ax).unwrap();
        assert_eq!(reg.admin_dir, x);
        assert_eq!(reg.branch.as_deref(), Some("ax"));
        assert_eq!(std::fs::read_to_string(ax.join(".git")).unwrap(), format!("gitdir: {}\n", x.display()));
        assert_eq!(verify(&repo, &bx).unwrap().admin_dir, repo.common_dir.join("worktrees/x1"));
    }

    #[test]
    fn when_two_admin_dirs_could_be_its_own_the_worktree_is_refused() {
        let (_t, repo, ax, bx) = two_named_alike();
        for wt in [&ax, &bx] {
            std::fs::write(wt.join(".git"), "gitdir: /\n").unwrap();
        }
        for admin in ["x", "x1"] {
            std::fs::write(repo.common_dir.join("worktrees").join(admin).join("gitdir"), "/elsewhere/.git\n").unwrap();
        }
        let err = verify(&repo, &ax).unwrap_err();
        assert_eq!(err.code, "tampered-worktree", "{err:?}");
        assert_eq!(std::fs::read_to_string(ax.join(".git")).unwrap(), "gitdir: /\n", "nothing written on a guess");
    }

    #[test]
    fn a_directory_the_ledger_does_not_name_is_never_repaired() {
        let (t, repo, _ax, _bx) = two_named_alike();
        let fake = t.path().canonicalize().unwrap().join("c/x");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::write(fake.join(".git"), "gitdir: /\n").unwrap();
        assert_eq!(verify(&repo, &fake).unwrap_err().code, "not-a-worktree");
        assert_eq!(std::fs::read_to_string(fake.join(".git")).unwrap(), "gitdir: /\n");
    }
}
