//! wt-run: runs a command in each worktree, with the worktree's environment, each run in its
//! own process group, with a log, a timeout and a record. See `child` for one run, `confine`
//! for Landlock.

pub mod agent;
pub mod args;
pub mod confine;
pub mod governed;
pub mod hide;
pub mod logs;
pub mod pane;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};

use serde_json::{json, Map, Value};
use wt_common::fs::{KEEP_LOGS, KEEP_LOGS_FOR};
use wt_common::git::repo::Repo;
use wt_common::host::Router;
use wt_common::ledger::LedgerFile;
use wt_common::record::output::{core_columns, status_or_error, Column, Output};
use wt_common::record::select::{self, Target};
use wt_common::{Error, Exit, Record};

use crate::args::{Args, PaneCmd, Sub};
use wt_common::ledger::lease::worktree_env;
use wt_common::proc::process::{self as child, Groups, Spec};
pub use wt_common::record::runlog::unique_stem;

pub const TOOL: &str = "wt-run";

/// What a run of wt-run ends with: a process exit code (a child's code passes through).
pub fn run(args: Args) -> Result<u8, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    // Inside a pane, WT_SOCKET names the supervisor that holds it: no repository needed.
    if let (Some(Sub::Pane(cmd)), Some(socket)) = (&args.sub, std::env::var_os("WT_SOCKET").filter(|s| !s.is_empty())) {
        return pane::verbs::run(std::path::Path::new(&socket), cmd, for_a_person(&args));
    }
    if let Some(Sub::Pane(PaneCmd::Notify { args: names, from_hook: Some(_), .. })) = &args.sub {
        let named = names.iter().any(|a| !a.trim_start().starts_with('{'));
        if !named && std::env::var("WT_PANE").map_or(true, |p| p.is_empty()) {
            return Ok(0); // an agent's hook, run outside any pane: nobody to tell
        }
    }
    let repo = Repo::discover(&args.global.start_dir())?;
    let root = repo.main_worktree.as_deref();
    if let Some(host) = &args.global.host {
        return at_host(root, host, &args);
    }
    if let Some(sub) = &args.sub {
        return subcommand(&repo, sub, for_a_person(&args));
    }
    args.select.require_some(&[])?;
    let ledger = LedgerFile::new(&repo.state_dir()).read()?;
    let columns = if args.pane.is_some() { pane_columns() } else { columns() };
    let mut out = Output::new(TOOL, args.global.json, columns);
    let use_stdin = args.select.from_stdin();
    // Runs of worktrees at a host happen there, by wt-run at that host.
    let hosts = if use_stdin { Router::split_stdin(TOOL, root)? } else { Router::local() };
    let targets = select::collect(TOOL, &repo, &ledger, &args.select.worktrees, args.select.all, use_stdin, &mut out);
    let groups: Groups = Arc::new(Mutex::new(Default::default()));
    let interrupted = wt_common::proc::signals::on_interrupt(Arc::clone(&groups), args.grace);
    let config: args::Config = wt_common::config::section(repo.main_worktree.as_deref(), "run")?;
    let backend = args.backend.clone().or(config.backend).unwrap_or_else(|| "native".into());
    if !["native", "tmux"].contains(&backend.as_str()) {
        return Err(Error::usage(
            "bad-config",
            format!("wt.toml: [run] backend must be native or tmux, not '{backend}'"),
        ));
    }
    if args.pane.as_deref().is_some_and(|n| !n.is_empty()) && targets.len() > 1 {
        return Err(Error::usage(
            "pane-name-shared",
            format!(
                "--pane={} names one pane, but {} worktrees were given; drop the name (each pane is named after its worktree) or give one worktree",
                args.pane.as_deref().unwrap_or_default(),
                targets.len()
            ),
        ));
    }
    if args.passthrough && targets.len() != 1 {
        return Err(Error::usage(
            "passthrough-one",
            format!("--passthrough runs one worktree, but {} were given; name one (-w NAME)", targets.len()),
        ));
    }
    let on_state = on_state_commands(&args.on_state, config.on_waiting.as_deref())?;
    let profiles = match args.pane {
        Some(_) => agent::profiles::load(repo.main_worktree.as_deref())?,
        None => Default::default(),
    };
    let agent_profile = match args.pane {
        Some(_) => Some(agent::profiles::choose(&profiles, &command_line(&args), args.agent.as_deref())?),
        None => None,
    };
    let pane_socket = match args.pane {
        Some(_) if !targets.is_empty() => Some(pane::client::ensure_server(&repo)?),
        _ => None,
    };
    let name_width = targets.iter().map(|t| target_name(t).chars().count()).max().unwrap_or(0);
    let ctx = Ctx {
        name_width,
        repo: &repo,
        ledger: &ledger,
        args: &args,
        groups: &groups,
        echo: std::io::stderr().is_terminal() && !args.quiet,
        pane_socket,
        backend,
        agent_hooks: args.agent_hooks || config.agent_hooks.unwrap_or(false),
        pass_env: if args.pass_env.is_empty() {
            config.pass_env.clone().unwrap_or_default()
        } else {
            args.pass_env.clone()
        },
        on_state,
        agent_profile,
        governor: wt_common::proc::governor::settings(repo.main_worktree.as_deref(), args.no_governor)?,
    };
    let single = targets.len() == 1;
    let jobs = args.jobs.unwrap_or_else(wt_common::proc::parallel::cores).max(1);
    let queue = Mutex::new(targets.into_iter().rev().collect::<Vec<_>>());
    let (tx, rx) = mpsc::channel();
    let mut code: Option<u8> = None;
    let mut all_ok = true;
    let progress = wt_common::record::progress::Progress::new(TOOL);
    let mut tally = [0usize; 3];
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let (tx, queue, ctx) = (tx.clone(), &queue, &ctx);
            s.spawn(move || loop {
                let Some(target) = queue.lock().expect("queue").pop() else { break };
                let _ = tx.send(run_target(ctx, target));
            });
        }
        drop(tx);
        for rec in rx {
            let c = exit_code_of(&rec);
            all_ok &= c == 0;
            code = Some(c);
            if args.passthrough {
                // stdout is the command's: the record goes to its file, or nowhere.
                if let Some(file) = &args.record {
                    if let Err(e) = wt_common::fs::write_atomic(file, format!("{}\n", rec.to_json()).as_bytes()) {
                        eprintln!("wt-run: cannot write the record to {}: {e}", file.display());
                        code = Some(1);
                    }
                }
                continue;
            }
            if args.pane.is_none() {
                let (slot, said) = outcome_words(&rec);
                tally[slot] += 1;
                progress.outcome(&rec.name, &said);
            }
            out.emit(&rec);
        }
    });
    if args.pane.is_none() && !args.passthrough {
        progress.summary(&[(tally[0], "passed"), (tally[1], "failed"), (tally[2], "timed out")]);
    }
    let local = out.finish();
    let status = hosts.finish(local);
    if status != local {
        // A host's records failed: the run as a whole did.
        return Ok(status as u8);
    }
    if let Some(sig) = interrupted.get() {
        return Ok(128u8.saturating_add(*sig as u8));
    }
    Ok(match (status, single, code) {
        (Exit::Usage | Exit::Environment, _, _) => status as u8,
        (_, true, Some(c)) => c,
        _ if all_ok => 0,
        _ => 1,
    })
}

struct Ctx<'a> {
    /// The longest worktree name, so that `name | line` prefixes line up.
    name_width: usize,
    repo: &'a Repo,
    ledger: &'a wt_common::ledger::Ledger,
    args: &'a Args,
    groups: &'a Groups,
    echo: bool,
    /// With `--pane`: the supervisor's socket.
    pane_socket: Option<PathBuf>,
    backend: String,
    /// `--agent-hooks`: register wt-run in the agent's hooks in each worktree.
    agent_hooks: bool,
    /// `--on-state`: state → command.
    on_state: Map<String, Value>,
    /// The agent profile of the panes' command.
    agent_profile: Option<pane::rules::ProfileSpec>,
    /// `--pass-env` (or `[run] pass_env`): the caller's variables a confined command keeps.
    pass_env: Vec<String>,
    /// The build governor's settings (`--no-governor`, `[governor]`).
    governor: wt_common::proc::governor::Settings,
}

/// `--on-state STATE=COMMAND` (and `[run] on_waiting`, which a flag for `waiting` overrides).
fn on_state_commands(given: &[String], on_waiting: Option<&str>) -> Result<Map<String, Value>, Error> {
    let mut map = Map::new();
    if let Some(cmd) = on_waiting.filter(|c| !c.trim().is_empty()) {
        map.insert("waiting".into(), json!(cmd));
    }
    for item in given {
        let (state, cmd) = item
            .split_once('=')
            .filter(|(s, c)| pane::agent::state_named(s).is_some() && !c.trim().is_empty())
            .ok_or_else(|| {
                Error::usage(
                    "bad-on-state",
                    format!("--on-state '{item}': write STATE=COMMAND, STATE one of starting, working, waiting, idle, running, exited"),
                )
            })?;
        map.insert(state.into(), json!(cmd));
    }
    Ok(map)
}

/// `--host H`: the whole command runs at H; pane verbs print what the host's wt-run prints
/// (`attach` through a terminal, `ssh -t`), batch and `--pane` runs stream records back.
fn at_host(root: Option<&Path>, host: &str, args: &Args) -> Result<u8, Error> {
    wt_common::host::quote::check_names(&args.select.worktrees)?;
    match &args.sub {
        Some(Sub::Pane(cmd)) => {
            wt_common::host::quote::check_names(&cmd.pane_names())?;
            let tty = matches!(cmd, PaneCmd::Attach { .. });
            wt_common::host::remote::exec_raw(root, host, TOOL, tty)
        }
        Some(Sub::Serve { .. }) => Err(Error::usage("usage", "`wt-run serve` runs where its panes are; drop --host")),
        // The log is where the run was: the host's wt-run prints it.
        Some(Sub::Logs { name, .. }) => {
            wt_common::host::quote::check_names(std::slice::from_ref(name))?;
            wt_common::host::remote::exec_raw(root, host, TOOL, false)
        }
        None => {
            let forwarded = wt_common::host::router::forwarded_args();
            let stdin = args.select.from_stdin();
            Ok(Router::at_host(TOOL, root, host, forwarded, stdin)?.finish(Exit::Ok) as u8)
        }
    }
}

/// Whether results are for a person: stdout is a terminal and `--json` was not given.
fn for_a_person(args: &Args) -> bool {
    !args.global.json && std::io::stdout().is_terminal()
}

/// `wt-run serve` and `wt-run pane …`.
fn subcommand(repo: &Repo, sub: &Sub, person: bool) -> Result<u8, Error> {
    let socket = pane::socket::socket_path(&repo.common_dir)?;
    match sub {
        Sub::Serve { idle } => {
            let session = pane::tmux::TmuxPane::session_name(repo.root(), &repo.common_dir);
            pane::server::serve(&socket, &repo.state_dir().join("logs"), &session, *idle)?;
            Ok(0)
        }
        Sub::Pane(cmd) => pane::verbs::run(&socket, cmd, person),
        Sub::Logs { name, follow } => {
            logs::print(&repo.state_dir().join("logs"), name, *follow)?;
            Ok(0)
        }
    }
}

/// `--pane`: starts the command in a pane of the supervisor and returns at once.
fn spawn_pane(
    ctx: &Ctx,
    socket: &Path,
    rec: &Record,
    argv: &[String],
    env: &[(String, String)],
) -> Result<Value, Error> {
    let given = ctx.args.pane.as_deref().unwrap_or_default();
    let name = if given.is_empty() { rec.name.clone() } else { given.to_string() };
    let mut env = env.to_vec();
    env.extend(governed::pane_request(&ctx.governor, ctx.args.confine.is_some()));
    let mut argv = argv.to_vec();
    // A confined pane gets a socket of its own, the only one left reachable when its
    // confinement hides the supervisor's.
    let own_socket = pane::socket::pane_socket_path(socket, &name);
    let policy = match &ctx.args.confine {
        Some(mode) => {
            let status_file = std::env::temp_dir().join(format!("wt-run-confine-{}.json", unique_stem()));
            let ports = leased_ports(rec, ctx.ledger);
            let mut p = confine::policy_for(
                ctx.repo,
                ctx.ledger,
                rec,
                ports,
                &ctx.args.allow_write,
                mode == "best-effort",
                status_file,
            )?;
            p.hide.extend(socket.parent().map(Path::to_path_buf));
            p.keep.push(own_socket.clone());
            p.env_keep = env_keep(&p, &env, &ctx.pass_env);
            env.extend(confined_env(&p));
            argv = confine::wrap(&p, &argv);
            Some(p)
        }
        None => None,
    };
    if ctx.agent_hooks {
        let worktree =
            rec.path.as_deref().ok_or_else(|| Error::failed("worktree-missing", "the record has no path"))?;
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        agent::install::install(ctx.repo, worktree, &exe)?;
    }
    let env: Map<String, Value> = env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let params = json!({
        "name": name, "cmd": argv, "cwd": rec.path, "env": env, "backend": ctx.backend,
        "restricted": policy.is_some(), "read_panes": ctx.args.confine_read_panes,
        "agent": ctx.agent_profile, "on_state": ctx.on_state,
    });
    let pane = pane::client::Client::connect(socket)?.call("pane.spawn", params)?;
    let mut info = json!({"name": name, "pid": pane["pid"], "socket": socket, "backend": ctx.backend});
    for key in ["log", "tmux"] {
        if let Some(v) = pane.get(key).filter(|v| !v.is_null()) {
            info[key] = v.clone();
        }
    }
    if let Some(policy) = &policy {
        let report = await_report(&policy.status_file);
        if let Some(e) = confine_error(&report) {
            return Err(e);
        }
        let mut confined = confined_record(ctx.args, policy, &report);
        confined.socket = Some(own_socket);
        confined.read_panes = Some(ctx.args.confine_read_panes);
        info["confined"] = serde_json::to_value(confined).expect("the record serializes");
    }
    Ok(json!({"cmd": command_line(ctx.args), "pane": info}))
}

/// The confinement helper reports just before it becomes the pane's program: wait for it.
fn await_report(file: &Path) -> confine::Report {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let report = read_report(file);
        if !report.enforced.is_empty() || report.error.is_some() || std::time::Instant::now() >= deadline {
            let _ = std::fs::remove_file(file);
            return report;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The exit code a record stands for: the run's own, 124 for a timeout, 128+N for signal N,
/// 1 for an error.
fn exit_code_of(rec: &Record) -> u8 {
    if rec.has_error() {
        return 1;
    }
    let run = rec.key("run");
    if run.is_some_and(|r| r.get("pane").is_some()) {
        return 0; // started: the pane goes on without us
    }
    if run.and_then(|r| r.get("timed_out")).and_then(Value::as_bool) == Some(true) {
        return 124;
    }
    if let Some(sig) = run.and_then(|r| r.get("signal_number")).and_then(Value::as_u64) {
        return 128u8.saturating_add(sig as u8);
    }
    run.and_then(|r| r.get("exit")).and_then(Value::as_u64).map_or(1, |c| c as u8)
}

fn run_target(ctx: &Ctx, target: Target) -> Record {
    let mut rec = match target {
        Target::PassThrough(r) => return *r,
        Target::Worktree(r) => *r,
    };
    if let Err(e) = select::check(&rec) {
        rec.set_error(TOOL, &e);
        return rec;
    }
    let (log, status_file) = match log_paths(ctx.repo, &rec.name) {
        Ok(p) => p,
        Err(e) => {
            rec.set_error(TOOL, &e);
            return rec;
        }
    };
    let argv = command_line(ctx.args);
    let env = worktree_env(&rec, ctx.ledger);
    if let Some(socket) = &ctx.pane_socket {
        match spawn_pane(ctx, socket, &rec, &argv, &env) {
            Ok(run) => rec.set_key("run", run),
            Err(e) => rec.set_error(TOOL, &e),
        }
        return rec;
    }
    let mut run = Map::new();
    run.insert("cmd".into(), json!(argv));
    if !ctx.args.passthrough {
        run.insert("log".into(), json!(log));
    }
    let policy = match &ctx.args.confine {
        Some(mode) => {
            let ports = leased_ports(&rec, ctx.ledger);
            let made = confine::policy_for(
                ctx.repo,
                ctx.ledger,
                &rec,
                ports,
                &ctx.args.allow_write,
                mode == "best-effort",
                status_file.clone(),
            );
            match made {
                Ok(p) => Some(confine::Policy { no_tty: true, env_keep: env_keep(&p, &env, &ctx.pass_env), ..p }),
                Err(e) => {
                    rec.set_error(TOOL, &e);
                    return rec;
                }
            }
        }
        None => None,
    };
    // What the command is about to test: the commit checked out and whether the tree is clean
    // (after a confined run's store is prepared, so its branch is the one the command sees).
    let path = rec.path.clone().unwrap_or_default();
    wt_common::git::tested::of(ctx.repo, &rec.name, &path).insert_into(&mut run, "head");
    let shown = format!("{:<width$}", rec.name, width = ctx.name_width);
    // A confined command gets the jobserver by path only (`governed::confined`).
    let lease = match governed::batch(&ctx.governor, ctx.args.passthrough, &rec.name, ctx.echo) {
        Ok(lease) => lease,
        Err(e) => {
            rec.set_error(TOOL, &e);
            return rec;
        }
    };
    let mut policy = policy;
    let passed_on = ctx.args.passthrough && ctx.governor.enabled;
    let jobserver = policy.as_mut().map(|p| governed::confined(p, lease.as_ref(), passed_on)).unwrap_or_default();
    let mut cmd = build_command(&rec, &argv, &env, policy.as_ref());
    match (&lease, &policy) {
        (Some(lease), None) => lease.apply(&mut cmd),
        _ => drop(cmd.envs(jobserver)),
    }
    let spec = Spec { name: &shown, log, timeout: ctx.args.timeout, grace: ctx.args.grace, echo: ctx.echo };
    let result = if ctx.args.passthrough {
        child::run_inherit(cmd, &spec, ctx.groups)
    } else {
        child::run(cmd, &spec, ctx.groups)
    };
    drop(lease); // the command's group has ended: its tokens go back
    let report = policy.as_ref().map(|_| read_report(&status_file));
    match result {
        Ok(outcome) => wt_common::record::runlog::describe(&mut run, &outcome),
        Err(e) => rec.set_error(TOOL, &e),
    }
    if let (Some(policy), Some(report)) = (&policy, &report) {
        let published = confine::publish(policy);
        let moved = published.as_ref().ok().cloned().flatten();
        let mut confined = confined_record(ctx.args, policy, report);
        confined.published = moved;
        run.insert("confined".into(), serde_json::to_value(confined).expect("the record serializes"));
        if let Some(e) = confine_error(report).or(published.err()) {
            rec.set_error(TOOL, &e);
        }
    }
    let _ = std::fs::remove_file(&status_file);
    if !rec.has_error() {
        keep_outcome(ctx.repo, &rec.name, &run, &argv);
    }
    rec.set_key("run", Value::Object(run));
    rec
}

/// Keeps how the run ended for wt-status (`ledger::outcome`): `pass`, or `red` with the failing
/// tests when the output names them (else its last lines).
fn keep_outcome(repo: &Repo, name: &str, run: &Map<String, Value>, argv: &[String]) {
    use wt_common::ledger::outcome::{self, Kind, Outcome};
    let passed = run.get("exit").and_then(Value::as_i64) == Some(0) && run.get("timed_out") != Some(&Value::Bool(true));
    let log = run.get("log").and_then(Value::as_str).map(PathBuf::from);
    let mut o = Outcome {
        log: log.clone(),
        commit: run.get("head").and_then(Value::as_str).map(str::to_string),
        cmd: Some(argv.join(" ")),
        ..Outcome::now(Kind::Run, if passed { "pass" } else { "red" })
    };
    if !passed {
        let excerpt =
            log.as_deref().and_then(|l| wt_common::record::excerpt::of_log(l, wt_common::record::excerpt::READ_BYTES));
        let tail = || {
            let lines = run.get("tail").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            // Its last words, which say most about how it ended.
            let said: Vec<&str> = lines.iter().filter_map(Value::as_str).filter(|l| !l.trim().is_empty()).collect();
            said[said.len().saturating_sub(3)..].join("\n")
        };
        o = o.with_excerpt(&excerpt.unwrap_or_else(tail));
    }
    outcome::write(&repo.state_dir(), name, &o);
}

/// The command as given, or `sh -c` with it joined into one string.
fn command_line(args: &Args) -> Vec<String> {
    if args.shell {
        vec!["sh".into(), "-c".into(), args.command.join(" ")]
    } else {
        args.command.clone()
    }
}

fn build_command(rec: &Record, argv: &[String], env: &[(String, String)], policy: Option<&confine::Policy>) -> Command {
    let argv = match policy {
        Some(p) => confine::wrap(p, argv),
        None => argv.to_vec(),
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(dir) = &rec.path {
        cmd.current_dir(dir);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(policy) = policy {
        cmd.envs(confined_env(policy));
    }
    cmd
}

/// What a confined command's environment adds: its private temp dir, and git configured not to
/// run automatic maintenance after a commit (pack-refs, gc), which writes in the repository
/// root that a confined command may not touch.
/// What a confined command keeps of its environment besides `confine::CORE_ENV`: what wt-run
/// sets for it (`env`, and the sandbox's own variables) and what `--pass-env` names.
fn env_keep(policy: &confine::Policy, env: &[(String, String)], pass: &[String]) -> Vec<String> {
    let set = env.iter().chain(confined_env(policy).iter()).map(|(k, _)| k.clone()).collect::<Vec<_>>();
    set.into_iter().chain(pass.iter().cloned()).collect()
}

fn confined_env(policy: &confine::Policy) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(tmp) = policy.system_tmp.as_ref().or(policy.private_tmp.as_ref()) {
        for k in ["TMPDIR", "TMP", "TEMP"] {
            env.push((k.to_string(), tmp.display().to_string()));
        }
    }
    let n: usize = std::env::var("GIT_CONFIG_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    for (i, (k, v)) in [("maintenance.auto", "false"), ("gc.auto", "0")].into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{}", n + i), k.to_string()));
        env.push((format!("GIT_CONFIG_VALUE_{}", n + i), v.to_string()));
    }
    env.push(("GIT_CONFIG_COUNT".into(), (n + 2).to_string()));
    env
}

/// The ports leased to the worktree: the record's `env.block`, else the ledger's lease.
fn leased_ports(rec: &Record, ledger: &wt_common::ledger::Ledger) -> Vec<u16> {
    let from_record = confine::leased_ports(rec);
    if !from_record.is_empty() {
        return from_record;
    }
    let entry = ledger.worktrees.get(&rec.name).filter(|e| Some(&e.path) == rec.path.as_ref());
    entry.and_then(wt_common::ledger::lease::block_of).map(|b| b.ports().collect()).unwrap_or_default()
}

/// `<state>/logs/<name>/<stem>.log`, and a scratch file for the confinement report.
/// The newest `KEEP_LOGS` run logs of a worktree are kept, none older than `KEEP_LOGS_FOR`.
fn log_paths(repo: &Repo, name: &str) -> Result<(PathBuf, PathBuf), Error> {
    let dir = wt_common::record::runlog::log_dir(repo, name)?;
    // Run logs (`<millis>-<pid>-<n>.log`) are kept for a while, not forever.
    let is_run_log =
        |f: &str| f.strip_suffix(".log").is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    wt_common::fs::prune_logs(&dir, is_run_log, KEEP_LOGS - 1, KEEP_LOGS_FOR);
    let stem = unique_stem();
    Ok((dir.join(format!("{stem}.log")), dir.join(format!(".{stem}.confine.json"))))
}

/// The helper's report: at most its last 1 MiB, never through a link or from a FIFO.
fn read_report(file: &std::path::Path) -> confine::Report {
    wt_common::fs::read_end(file, 1 << 20).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// `run.confined`: what the sandbox enforced on this run.
fn confined_record(args: &Args, policy: &confine::Policy, report: &confine::Report) -> confine::record::Confined {
    confine::record::Confined::new(args.confine.as_deref().unwrap_or("strict"), policy, report)
}

fn confine_error(report: &confine::Report) -> Option<Error> {
    match (&report.exec_error, &report.error) {
        (Some(kind), Some(msg)) => Some(Error::failed(kind, format!("command not started: {msg}"))),
        (None, Some(msg)) => Some(Error::failed("confine-unsupported", msg.clone())),
        _ if report.enforced.is_empty() => {
            Some(Error::failed("confine-failed", "the confinement helper did not report"))
        }
        _ => None,
    }
}

fn target_name(t: &Target) -> &str {
    match t {
        Target::Worktree(r) | Target::PassThrough(r) => &r.name,
    }
}

/// How a run ended, for the progress line: its slot in the tally (passed, failed, timed out)
/// and the words (`passed in 1.2s`, `exit 3 after 4.0s`).
fn outcome_words(rec: &Record) -> (usize, String) {
    let run = rec.key("run");
    let took =
        run.and_then(|r| r.get("duration_ms")).and_then(Value::as_u64).map(wt_common::record::duration::human_ms);
    let took = took.unwrap_or_default();
    match (rec.error.as_ref(), exit_text(rec)) {
        (Some(e), _) => (1, format!("error: {}", e.message)),
        (None, t) if t == "timeout" => (2, format!("timed out after {took}")),
        (None, t) if t == "0" => (0, format!("passed in {took}")),
        (None, t) => (1, format!("exit {t} after {took}")),
    }
}

/// A run's end as the EXIT column shows it: the code, `SIGKILL`, or `timeout`.
fn exit_text(r: &Record) -> String {
    match r.key("run") {
        Some(run) if run.get("timed_out").and_then(Value::as_bool) == Some(true) => "timeout".into(),
        Some(run) => run
            .get("exit")
            .map(|e| e.to_string())
            .or_else(|| run.get("signal").and_then(Value::as_str).map(|s| format!("SIG{s}")))
            .unwrap_or_default(),
        None => String::new(),
    }
}

fn columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.truncate(2);
    cols.push(Column { title: "EXIT", value: exit_text });
    cols.push(Column {
        title: "TIME",
        value: |r| {
            let ms = r.key("run").and_then(|x| x.get("duration_ms")).and_then(Value::as_u64);
            ms.map(wt_common::record::duration::human_ms).unwrap_or_default()
        },
    });
    cols.push(Column {
        title: "LOG",
        value: |r| r.key("run").and_then(|x| x.get("log")).and_then(Value::as_str).unwrap_or_default().to_string(),
    });
    cols.push(Column { title: "STATUS", value: |r| status_or_error(r, "") });
    cols
}

fn pane_of(r: &Record) -> Value {
    r.key("run").and_then(|x| x.get("pane")).cloned().unwrap_or_default()
}

/// `--pane` on a terminal: which pane each worktree got, its program's pid, how to sit at it.
fn pane_columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.truncate(2);
    cols.push(Column { title: "PANE", value: |r| pane_of(r)["name"].as_str().unwrap_or_default().to_string() });
    cols.push(Column {
        title: "PID",
        value: |r| pane_of(r)["pid"].as_u64().map(|p| p.to_string()).unwrap_or_default(),
    });
    cols.push(Column {
        title: "ATTACH",
        value: |r| {
            let p = pane_of(r);
            match (p["tmux"]["session"].as_str(), p["name"].as_str()) {
                (Some(session), _) => format!("tmux attach -t {session}"),
                (None, Some(name)) => format!("wt-run pane attach {name}"),
                _ => String::new(),
            }
        },
    });
    cols.push(Column { title: "STATUS", value: |r| status_or_error(r, "") });
    cols
}
