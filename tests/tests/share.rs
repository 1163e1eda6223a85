//! `wt-create --share`: dependency directories shared into worktrees from the store. Real
//! packages from the npm registry and PyPI (the tests fail, saying so, when those cannot be
//! reached), real virtualenvs, real git.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wt_common::record::size::human;
use wt_tests::{s, Run, TestRepo};

/// A download cache shared by the tests of one run (under the target dir), so each package
/// crosses the network once.
fn cache_dir(tool: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache").join(tool);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a package manager (or what it installed) in `dir`, isolated like the wt tools; panics
/// with its output when it fails, naming what must be reachable.
fn tool(t: &TestRepo, dir: &Path, program: &str, args: &[&str], needs: &str) -> String {
    // A program path is relative to `dir` (Command would take it relative to ours).
    let mut cmd = Command::new(if program.contains('/') { dir.join(program) } else { PathBuf::from(program) });
    cmd.args(args).current_dir(dir);
    t.isolate(&mut cmd)
        .env("npm_config_cache", cache_dir("npm"))
        .env("npm_config_update_notifier", "false")
        .env("PIP_CACHE_DIR", cache_dir("pip"))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {program} ({needs}): {e}"));
    let run = Run::from_output(out);
    assert_eq!(run.code, Some(0), "`{program} {}` failed in {} ({needs})\n{run}", args.join(" "), dir.display());
    run.stdout
}

const NPM_NEEDS: &str = "this test installs real packages: the npm registry must be reachable";
const PIP_NEEDS: &str = "this test installs a real package: PyPI must be reachable";

/// A repository whose main worktree has `npm install`ed `packages` (package.json and
/// package-lock.json committed, node_modules ignored).
fn npm_repo(packages: &[&str]) -> TestRepo {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("package.json", "{\"name\": \"app\", \"version\": \"1.0.0\", \"private\": true}\n");
    let mut args = vec!["install", "--no-audit", "--no-fund", "--save-exact"];
    args.extend_from_slice(packages);
    tool(&t, &t.repo, "npm", &args, NPM_NEEDS);
    t.commit("dependencies");
    t
}

fn share_record(rec: &Value, dir: &str) -> Value {
    rec["share"]["dirs"]
        .as_array()
        .unwrap_or_else(|| panic!("no share in {rec}"))
        .iter()
        .find(|d| d["dir"] == dir)
        .unwrap_or_else(|| panic!("{dir} not in {rec}"))
        .clone()
}

/// Blocks of every file and directory under `dirs`, each inode once, leaving out `except`.
fn disk_use(dirs: &[PathBuf], except: &HashSet<(u64, u64)>) -> (u64, HashSet<(u64, u64)>) {
    let mut seen = HashSet::new();
    let mut bytes = 0;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        let ino = (meta.dev(), meta.ino());
        if !except.contains(&ino) && seen.insert(ino) {
            bytes += meta.blocks() * 512;
        }
        if meta.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    (bytes, seen)
}

#[test]
fn npm_tree_shared_into_eight_worktrees_costs_little_and_runs_everywhere() {
    let t = npm_repo(&["esbuild@0.25.0", "lodash@4.17.21", "chalk@4.1.2"]);
    let run = t.run("wt-create", &["-n", "8", "--share", "node_modules"], "");
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.len(), 8);
    let (full_copy, main_inodes) = disk_use(&[t.repo.join("node_modules")], &HashSet::new());
    let mut trees = Vec::new();
    for rec in &recs {
        let shared = share_record(rec, "node_modules");
        assert_eq!(shared["status"], "shared", "{rec}");
        assert!(shared["linked"].as_u64().unwrap() > 1000, "{shared}");
        let wt = PathBuf::from(s(rec, "path"));
        let nm = wt.join("node_modules");
        assert!(!fs::symlink_metadata(&nm).unwrap().file_type().is_symlink(), "a real directory, not a symlink");
        let out = tool(
            &t,
            &wt,
            "node",
            &["-e", "const e=require('esbuild'); console.log(require('lodash').VERSION, e.transformSync('let x: number = 1', {loader: 'ts'}).code.trim(), require.resolve('lodash'))"],
            "node runs the shared tree",
        );
        assert!(out.starts_with("4.17.21 let x = 1;"), "{out}");
        assert!(out.trim_end().ends_with(&format!("{}/node_modules/lodash/lodash.js", wt.display())), "{out}");
        // The platform binary, through the bin link npm made, runs.
        let version = tool(&t, &wt, "node_modules/.bin/esbuild", &["--version"], "the shared esbuild binary runs");
        assert_eq!(version.trim(), "0.25.0");
        trees.push(nm);
    }
    // Disk: everything the 8 trees hold that the main worktree's tree does not.
    let (extra, _) = disk_use(&trees, &main_inodes);
    eprintln!("disk: 8 shared trees {extra} bytes beyond the main tree; 8 full copies {}", full_copy * 8);
    assert!(
        extra * 100 <= full_copy * 8 * 15,
        "8 shared trees use {extra} bytes beyond the main tree; 8 full copies would be {}",
        full_copy * 8
    );
    let status = t.run("wt-create", &["--share-status", "--json"], "");
    status.expect_code(0);
    let st = status.records();
    assert_eq!(st.len(), 8);
    let full: u64 = st.iter().map(|r| r["share"]["status"]["full_bytes"].as_u64().unwrap()).sum();
    assert!(full >= full_copy * 8, "status counts full copies: {full} < {}", full_copy * 8);
    assert!(status.stderr.contains("against"), "{status}");
}

#[test]
fn a_rename_write_in_one_worktree_changes_no_other() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/pkg/index.js", "module.exports = 'original';\n");
    t.run("wt-create", &["a", "b", "--share", "deps"], "").expect_code(0);
    let target = |root: &Path| root.join("deps/pkg/index.js");
    let a = t.wt_root().join("a");
    let b = t.wt_root().join("b");
    assert_eq!(fs::metadata(target(&a)).unwrap().ino(), fs::metadata(target(&t.repo)).unwrap().ino(), "linked");
    // What npm and pip do: write a temp file, rename it over the old one.
    fs::write(a.join("deps/pkg/.index.js.tmp"), "module.exports = 'changed';\n").unwrap();
    fs::rename(a.join("deps/pkg/.index.js.tmp"), target(&a)).unwrap();
    assert_eq!(fs::read_to_string(target(&a)).unwrap(), "module.exports = 'changed';\n");
    for other in [&b, &t.repo] {
        assert_eq!(fs::read_to_string(target(other)).unwrap(), "module.exports = 'original';\n", "{}", other.display());
    }
}

#[test]
fn a_workspace_package_resolves_to_the_worktrees_own_source() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("package.json", r#"{"name": "mono", "private": true, "workspaces": ["packages/*"]}"#);
    t.write("packages/lib/package.json", r#"{"name": "@acme/lib", "version": "1.0.0", "main": "index.js"}"#);
    t.write("packages/lib/index.js", "module.exports = 'main checkout';\n");
    t.write("packages/app/package.json", r#"{"name": "@acme/app", "version": "1.0.0"}"#);
    tool(&t, &t.repo, "npm", &["install", "--offline", "--no-audit", "--no-fund"], "npm links workspaces");
    t.commit("monorepo");
    let link = fs::read_link(t.repo.join("node_modules/@acme/lib")).unwrap();
    assert!(link.is_relative(), "npm links workspaces relatively: {}", link.display());

    t.run("wt-create", &["w", "--share", "node_modules"], "").expect_code(0);
    let w = t.wt_root().join("w");
    assert_eq!(fs::read_link(w.join("node_modules/@acme/lib")).unwrap(), link, "kept relative");
    fs::write(w.join("packages/lib/index.js"), "module.exports = 'worktree';\n").unwrap();
    let out = tool(
        &t,
        &w.join("packages/app"),
        "node",
        &["-e", "console.log(require('@acme/lib'), require.resolve('@acme/lib'))"],
        "node resolves the workspace",
    );
    assert_eq!(out.trim(), format!("worktree {}", w.join("packages/lib/index.js").display()));
}

#[test]
fn a_worktree_whose_lock_file_differs_is_not_shared() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("package-lock.json", "{\"lockfileVersion\": 3}\n");
    t.commit("lock");
    t.write("node_modules/x/index.js", "1\n");
    // The main worktree's dependencies moved on; the branch's lock file is the committed one.
    t.write("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {\"x\": {}}}\n");
    let run = t.run("wt-create", &["w", "--share", "node_modules"], "");
    run.expect_code(0);
    let shared = share_record(&run.records()[0], "node_modules");
    assert_eq!(shared["status"], "skipped");
    assert!(s(&shared, "reason").contains("package-lock.json"), "{shared}");
    assert!(run.stderr.contains("not sharing node_modules: package-lock.json differs"), "{run}");
    assert!(!t.wt_root().join("w/node_modules").exists());
}

#[test]
fn a_virtualenv_shared_into_two_worktrees_is_each_worktrees_own() {
    let t = TestRepo::new();
    t.write(".gitignore", ".venv/\n");
    t.write("requirements.txt", "six==1.17.0\n");
    t.commit("python");
    tool(&t, &t.repo, "python3", &["-m", "venv", ".venv"], "python3 -m venv (python3-venv)");
    tool(&t, &t.repo, ".venv/bin/pip", &["install", "-q", "-r", "requirements.txt"], PIP_NEEDS);
    let run = t.run("wt-create", &["a", "b", "--share", ".venv"], "");
    run.expect_code(0);
    let shared = share_record(&run.records()[0], ".venv");
    assert!(shared["rewritten"].as_u64().unwrap() >= 3, "pip, activate, pyvenv.cfg: {shared}");
    let (a, b) = (t.wt_root().join("a"), t.wt_root().join("b"));
    let probe = "import six, sys; print(sys.prefix, six.__version__)";
    for w in [&a, &b] {
        let out = tool(&t, w, ".venv/bin/python", &["-c", probe], "the shared venv runs");
        assert_eq!(out.trim(), format!("{} 1.17.0", w.join(".venv").display()));
        let pip = fs::read_to_string(w.join(".venv/bin/pip")).unwrap();
        assert!(pip.starts_with(&format!("#!{}/.venv/bin/python", w.display())), "{pip}");
    }
    let six_py =
        |w: &Path| w.join(".venv/lib").read_dir().unwrap().next().unwrap().unwrap().path().join("site-packages/six.py");
    assert_eq!(fs::metadata(six_py(&a)).unwrap().ino(), fs::metadata(six_py(&t.repo)).unwrap().ino(), "six linked");
    let listed = |w: &Path| tool(&t, w, ".venv/bin/pip", &["freeze", "--all"], "pip runs");
    let (main_before, b_before) = (listed(&t.repo), listed(&b));

    // pip in one worktree installs there only, and reinstalling a shared package replaces
    // files the others link to.
    tool(&t, &a, ".venv/bin/pip", &["install", "-q", "toml==0.10.2"], PIP_NEEDS);
    tool(&t, &a, ".venv/bin/pip", &["install", "-q", "--force-reinstall", "--no-deps", "six==1.16.0"], PIP_NEEDS);
    let a_now = listed(&a);
    assert!(a_now.contains("toml==0.10.2") && a_now.contains("six==1.16.0"), "{a_now}");
    assert_eq!(listed(&t.repo), main_before, "the main venv is unchanged");
    assert_eq!(listed(&b), b_before, "the other worktree's venv is unchanged");
    for w in [&t.repo, &b] {
        let out = tool(&t, w, ".venv/bin/python", &["-c", "import six; print(six.__version__)"], "venv runs");
        assert_eq!(out.trim(), "1.17.0", "{}", w.display());
    }
}

#[test]
fn cargo_target_is_copied_not_hard_linked() {
    let t = TestRepo::new();
    t.write(".gitignore", "target/\n");
    t.commit("ignore target");
    t.write("target/.rustc_info.json", "{}\n");
    t.write("target/debug/app", "binary\n");
    let run = t.run("wt-create", &["w", "--share", "target", "--share-mode", "hardlink"], "");
    run.expect_code(0);
    let shared = share_record(&run.records()[0], "target");
    assert!(shared["note"].as_str().unwrap().contains("in place"), "{shared}");
    assert_ne!(shared["method"], "hardlink");
    assert!(run.stderr.contains("rather than hard-linked"), "{run}");
    let (main, wt) = (t.repo.join("target/debug/app"), t.wt_root().join("w/target/debug/app"));
    assert_ne!(fs::metadata(&main).unwrap().ino(), fs::metadata(&wt).unwrap().ino());
    assert_eq!(fs::read(&wt).unwrap(), b"binary\n");
}

#[test]
fn modes_symlinks_and_paths_are_kept_or_rewritten() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/bin/tool", "#!/bin/sh\necho tool\n");
    fs::set_permissions(t.repo.join("deps/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../bin/tool", t.repo.join("deps/relative")).unwrap();
    std::os::unix::fs::symlink(t.repo.join("deps/bin/tool"), t.repo.join("deps/absolute")).unwrap();
    t.write("deps/config.txt", &format!("root={}/deps\nother={}.wt/x\n", t.repo.display(), t.repo.display()));
    t.run("wt-create", &["w", "--share", "deps"], "").expect_code(0);
    let w = t.wt_root().join("w");
    assert_eq!(fs::metadata(w.join("deps/bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::read_link(w.join("deps/relative")).unwrap(), Path::new("../bin/tool"));
    assert_eq!(fs::read_link(w.join("deps/absolute")).unwrap(), w.join("deps/bin/tool"));
    assert_eq!(
        fs::read_to_string(w.join("deps/config.txt")).unwrap(),
        format!("root={}/deps\nother={}.wt/x\n", w.display(), t.repo.display())
    );
    let out = Command::new(w.join("deps/bin/tool")).output().unwrap();
    assert_eq!(out.stdout, b"tool\n");
}

#[test]
fn sharing_again_picks_up_new_dependencies_and_a_killed_share_leaves_the_old_tree() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/a.js", "a\n");
    t.run("wt-create", &["w", "--share", "deps"], "").expect_code(0);
    let w = t.wt_root().join("w");
    t.write("deps/b.js", "b\n");
    // Killed just before the new tree is swapped in: the old tree is whole, a temp dir is left.
    let mut cmd = t.cmd("wt-create");
    cmd.args(["w", "--share", "deps"]).env("WT_FAILPOINT", "share-before-swap");
    let killed = Run::of(&mut cmd, "");
    assert_eq!(killed.code, None, "killed\n{killed}");
    assert!(w.join("deps/a.js").is_file() && !w.join("deps/b.js").exists());
    let leftovers = || {
        fs::read_dir(&w)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("wt-share"))
            .count()
    };
    assert_eq!(leftovers(), 1);
    // Killed after the swap, while the old tree is being removed.
    let mut cmd = t.cmd("wt-create");
    cmd.args(["w", "--share", "deps"]).env("WT_FAILPOINT", "share-after-swap");
    assert_eq!(Run::of(&mut cmd, "").code, None);
    assert!(w.join("deps/b.js").is_file(), "the new tree is in place");
    // The next run re-shares and cleans up.
    t.write("deps/c.js", "c\n");
    let run = t.run("wt-create", &["w", "--share", "deps"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], false);
    assert_eq!(share_record(&run.records()[0], "deps")["files"], 3);
    assert!(w.join("deps/c.js").is_file());
    assert_eq!(leftovers(), 0);
}

#[test]
fn a_store_entry_that_does_not_match_its_hash_is_replaced() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/x.js", "the real content\n");
    // A store entry under x.js's name whose bytes are something else (a copy cut short).
    let sum = Command::new("sha256sum").arg(t.repo.join("deps/x.js")).output().unwrap();
    let hash = String::from_utf8(sum.stdout).unwrap()[..64].to_string();
    let entry = t.repo.join(".git/wt/store/files").join(&hash[..2]).join(format!("{}-0644", &hash[2..]));
    fs::create_dir_all(entry.parent().unwrap()).unwrap();
    fs::write(&entry, "the real").unwrap();
    t.run("wt-create", &["w", "--share", "deps"], "").expect_code(0);
    assert_eq!(fs::read_to_string(t.wt_root().join("w/deps/x.js")).unwrap(), "the real content\n");
    assert_eq!(fs::read_to_string(&entry).unwrap(), "the real content\n");
}

#[test]
fn store_gc_removes_only_entries_nothing_links_to() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/kept.js", "kept\n");
    t.write("deps/gone.js", "gone\n");
    t.run("wt-create", &["w", "--share", "deps"], "").expect_code(0);
    let store = t.repo.join(".git/wt/store/files");
    let count =
        || fs::read_dir(&store).unwrap().map(|d| fs::read_dir(d.unwrap().path()).unwrap().count()).sum::<usize>();
    assert_eq!(count(), 2);
    fs::remove_file(t.repo.join("deps/gone.js")).unwrap();
    t.run("wt-create", &["--store-gc"], "").expect_code(0);
    assert_eq!(count(), 2, "the worktree still links gone.js");
    fs::remove_file(t.wt_root().join("w/deps/gone.js")).unwrap();
    let gc = t.run("wt-create", &["--store-gc"], "");
    gc.expect_code(0);
    assert_eq!(count(), 1);
    assert!(gc.stderr.contains("removed 1 files"), "{gc}");
    assert_eq!(fs::read_to_string(t.wt_root().join("w/deps/kept.js")).unwrap(), "kept\n");
}

#[test]
fn share_status_counts_what_is_on_disk_and_store_gc_says_what_it_keeps_and_why() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    let bytes =
        |seed: u8| (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect::<Vec<u8>>();
    fs::create_dir_all(t.repo.join("deps/lib")).unwrap();
    fs::write(t.repo.join("deps/a.bin"), bytes(1)).unwrap();
    fs::write(t.repo.join("deps/lib/b.bin"), bytes(2)).unwrap();
    t.run("wt-create", &["w1", "w2", "--share", "deps", "--share-mode", "hardlink"], "").expect_code(0);
    let trees_and_store = [t.wt_root().join("w1/deps"), t.wt_root().join("w2/deps"), t.repo.join(".git/wt/store")];
    let said = |t: &TestRepo| {
        let status = t.run("wt-create", &["--share-status"], "");
        status.expect_code(0);
        let (_, main) = disk_use(&[t.repo.join("deps")], &HashSet::new());
        let (beyond_main, _) = disk_use(&trees_and_store, &main);
        (status.stderr.clone(), beyond_main)
    };
    // Every file is a hard link of the main worktree's own: only directories cost anything.
    let (stderr, beyond_main) = said(&t);
    assert!(beyond_main < 100_000, "{beyond_main}");
    assert!(stderr.contains(&format!(": {} on disk beyond the main worktree's", human(beyond_main))), "{stderr}");
    // The main worktree's a.bin is installed again (a new inode): the worktrees' old one costs.
    fs::remove_file(t.repo.join("deps/a.bin")).unwrap();
    fs::write(t.repo.join("deps/a.bin"), bytes(1)).unwrap();
    let (stderr, beyond_main) = said(&t);
    assert!(beyond_main > 300_000, "{beyond_main}");
    assert!(stderr.contains(&format!(": {} on disk beyond the main worktree's", human(beyond_main))), "{stderr}");
    let gc = t.run("wt-create", &["--store-gc"], "");
    gc.expect_code(0);
    for says in [
        "removed 0 files",
        "kept 2 files",
        "in use by w1 (2 files), w2 (2)",
        "1 are the main worktree's own files (they cost nothing: the same inode)",
    ] {
        assert!(gc.stderr.contains(says), "{says:?} in {gc}");
    }
}

#[test]
fn bad_share_directories_are_refused_before_anything_is_made() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    for (dir, code) in [
        ("../x", "give a directory relative"),
        ("missing", "install the dependencies there first"),
        ("src", "holds files git tracks"),
    ] {
        let run = t.run("wt-create", &["w", "--share", dir], "");
        run.expect_code(2);
        assert!(run.stderr.contains(code), "{dir}: {run}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run}");
    }
    assert!(!t.wt_root().join("w").exists());
    assert_eq!(t.git_worktrees().len(), 1);
}

#[test]
fn a_directory_git_does_not_ignore_is_refused_with_the_line_that_fixes_it() {
    let t = TestRepo::new();
    t.write("vendor/lib.js", "1\n");
    let run = t.run("wt-create", &["w", "--share", "vendor"], "");
    run.expect_code(2);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {run}");
    for says in
        ["vendor is not ignored by git", "add the line `/vendor/` to .gitignore", ".git/info/exclude (this clone only)"]
    {
        assert!(run.stderr.contains(says), "{says:?} in {run}");
    }
    assert!(!t.wt_root().join("w").exists());
    // The line, where the message says, is the fix.
    std::fs::write(t.repo.join(".git/info/exclude"), "/vendor/\n").unwrap();
    let run = t.run("wt-create", &["w", "--share", "vendor"], "");
    assert_eq!(share_record(&run.expect_code(0).records()[0], "vendor")["status"], "shared");
}

#[test]
fn without_a_lock_file_the_manifest_is_compared_and_without_either_a_warning_says_so() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.write("app/package.json", "{\"dependencies\": {\"x\": \"^1.0.0\"}}\n");
    t.commit("manifest, no lock file");
    t.write("app/deps/x/index.js", "1\n");
    t.write("deps/y.js", "2\n");
    // Same manifest: shared, and the record says what was compared.
    let run = t.run("wt-create", &["same", "--share", "app/deps", "--share", "deps"], "");
    let rec = &run.expect_code(0).records()[0];
    let app = share_record(rec, "app/deps");
    assert_eq!((&app["status"], &app["compared"]), (&Value::from("shared"), &serde_json::json!(["app/package.json"])));
    assert!(app.get("warning").is_none(), "{app}");
    // Nothing to compare for `deps` at the root: shared, with a warning on stderr and in the record.
    let bare = share_record(rec, "deps");
    assert_eq!(bare["status"], "shared");
    assert!(s(&bare, "warning").contains("without proof"), "{bare}");
    let said: Vec<&str> = run.stderr.lines().filter(|l| l.contains("without proof")).collect();
    assert_eq!(said.len(), 1, "{run}");
    assert!(said[0].contains("same: shared deps") && said[0].contains("no lock file"), "{run}");
    // The main worktree's manifest moved on: the branch's is the committed one, so no sharing.
    t.write("app/package.json", "{\"dependencies\": {\"x\": \"^2.0.0\"}}\n");
    let run = t.run("wt-create", &["moved", "--share", "app/deps"], "");
    let app = share_record(&run.expect_code(0).records()[0], "app/deps");
    assert_eq!(app["status"], "skipped");
    assert!(run.stderr.contains("not sharing app/deps: app/package.json differs"), "{run}");
    assert!(!t.wt_root().join("moved/app/deps").exists());
}

#[test]
fn pnpm_settings_are_printed_and_applied() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
    t.commit("pnpm");
    t.write("node_modules/x/index.js", "1\n");
    let run = t.run("wt-create", &["a", "--share", "node_modules"], "");
    run.expect_code(0);
    assert!(run.stderr.contains("store-dir=") && run.stderr.contains("Turbopack"), "{run}");
    assert!(!t.wt_root().join("a/.npmrc").exists());
    let run = t.run("wt-create", &["b", "--share", "node_modules", "--share", "pnpm"], "");
    run.expect_code(0);
    let npmrc = fs::read_to_string(t.wt_root().join("b/.npmrc")).unwrap();
    let store = t.repo.join(".git/wt/pnpm-store");
    assert!(npmrc.contains(&format!("store-dir={}\n", store.display())), "{npmrc}");
    let settings: HashMap<_, _> = npmrc.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(settings.len(), 2, "{npmrc}");
}

#[test]
fn many_processes_sharing_at_once_fill_the_store_once() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    for i in 0..40 {
        t.write(&format!("deps/m{}/f{i}.js", i % 4), &format!("module {}\n", i % 20));
        // 20 distinct contents
    }
    // Six processes at once, each hashing into a store that is still empty.
    let children: Vec<_> = (1..=6)
        .map(|i| {
            let mut cmd = t.cmd("wt-create");
            cmd.args([format!("p-{i}").as_str(), "--share", "deps"]);
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for child in children {
        Run::from_output(child.wait_with_output().unwrap()).expect_code(0);
    }
    let store = t.repo.join(".git/wt/store/files");
    let entries: usize = fs::read_dir(&store).unwrap().map(|d| fs::read_dir(d.unwrap().path()).unwrap().count()).sum();
    assert_eq!(entries, 20, "one entry per distinct content");
    for i in 1..=6 {
        for f in 0..40 {
            let rel = format!("deps/m{}/f{f}.js", f % 4);
            let wt = t.wt_root().join(format!("p-{i}")).join(&rel);
            assert_eq!(fs::read_to_string(&wt).unwrap(), format!("module {}\n", f % 20));
        }
    }
    assert_eq!(fs::read_dir(t.repo.join(".git/wt/store/tmp")).unwrap().count(), 0);
}

#[test]
fn a_new_worktree_killed_while_sharing_is_rolled_back_and_made_again() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/a.js", "a\n");
    let mut cmd = t.cmd("wt-create");
    cmd.args(["w", "--share", "deps"]).env("WT_FAILPOINT", "share-before-swap");
    assert_eq!(Run::of(&mut cmd, "").code, None, "killed");
    let run = t.run("wt-create", &["w", "--share", "deps"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "rolled back, then made: {run}");
    assert_eq!(fs::read_to_string(t.wt_root().join("w/deps/a.js")).unwrap(), "a\n");
    assert_eq!(t.git_worktrees().len(), 2);
}

#[test]
fn a_symlink_planted_in_the_worktree_does_not_lead_the_share_outside_it() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.commit("ignore");
    t.write("packages/app/node_modules/x.js", "x\n");
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    // The agent replaces packages/ by a link to a directory of the user's.
    let outside = t.root().join("outside");
    fs::create_dir_all(outside.join("app/node_modules")).unwrap();
    fs::write(outside.join("app/node_modules/precious"), "keep me\n").unwrap();
    fs::remove_dir_all(w.join("packages")).ok();
    std::os::unix::fs::symlink(&outside, w.join("packages")).unwrap();
    let run = t.run("wt-create", &["w", "--share", "packages/app/node_modules"], "");
    run.expect_code(1);
    assert!(run.stderr.contains("not a directory"), "{run}");
    assert_eq!(fs::read_to_string(outside.join("app/node_modules/precious")).unwrap(), "keep me\n");
    assert_eq!(fs::read_dir(outside.join("app")).unwrap().count(), 1, "nothing built outside");
}
