//! Hosts over ssh, end to end: three hosts simulated on this machine, each a real OpenSSH
//! `sshd` of its own on its own loopback address (127.0.0.2, .3, .4) and port, with host and
//! user keys made by the test, its own repository path, and an ssh config file the test writes
//! (`-F`, with its own known-hosts file: host keys are checked). Traffic goes only to loopback.
//! Each test starts its sshds and kills them, with every session they started.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wt_tests::{bin, s, Run, TestRepo};

/// One simulated host: an sshd on `addr:port`.
struct Sshd {
    name: String,
    addr: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    fn config_path(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    fn start(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(self.config_path())
            .arg("-E")
            .arg(self.dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd (Debian's openssh-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((self.addr.as_str(), self.port)).is_err() {
            assert!(Instant::now() < deadline, "sshd {} did not start:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the sshd and every sshd process of its sessions: the connections drop, as when a
    /// host goes away from the network. The commands those sessions started are left to fend
    /// for themselves, as they would be on a real host.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let is_sshd = |pid: &i32| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim().starts_with("sshd"))
            };
            let mut pids: Vec<i32> = descendants(child.id() as i32).into_iter().filter(is_sshd).collect();
            pids.push(child.id() as i32);
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        if let Some(ppid) = after.split(' ').nth(1).and_then(|p| p.parse().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// A free TCP port on `addr`.
fn free_port(addr: &str) -> u16 {
    std::net::TcpListener::bind((addr, 0)).unwrap().local_addr().unwrap().port()
}

fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).output().unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string()
}

/// A local repository and `n` hosts, declared in its wt.toml.
struct Lab {
    t: TestRepo,
    hosts: Vec<Sshd>,
}

impl Lab {
    fn new(n: usize) -> Lab {
        let t = TestRepo::new();
        let root = t.root();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let ssh_dir = root.join("ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap();
        let user_pub = keygen(&ssh_dir.join("user_key"));
        std::fs::write(ssh_dir.join("authorized_keys"), format!("{user_pub}\n")).unwrap();
        let mut client = String::new();
        let mut known = String::new();
        let mut toml = String::new();
        let mut hosts = Vec::new();
        for i in 1..=n {
            let name = format!("h{i}");
            let addr = format!("127.0.0.{}", i + 1);
            let port = free_port(&addr);
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let host_pub = keygen(&dir.join("host_key"));
            let config = format!(
                "ListenAddress {addr}:{port}\nHostKey {hk}\nPidFile none\nUsePAM no\nUseDNS no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {ak}\nLogLevel VERBOSE\nMaxSessions 50\nMaxStartups 50\n",
                hk = dir.join("host_key").display(),
                ak = ssh_dir.join("authorized_keys").display(),
            );
            std::fs::write(dir.join("sshd_config"), config).unwrap();
            client += &format!(
                "Host {name}\n  HostName {addr}\n  Port {port}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
                key = ssh_dir.join("user_key").display(),
                kh = ssh_dir.join("known_hosts").display(),
            );
            known += &format!("[{addr}]:{port} {host_pub}\n");
            toml += &format!(
                "[hosts.{name}]\nssh = \"{name}\"\npath = \"{}\"\nbin = \"{}\"\nssh_config = \"{}\"\n\n",
                dir.join("repo").display(),
                bin("wt-run").parent().unwrap().display(),
                ssh_dir.join("config").display(),
            );
            let mut sshd = Sshd { name, addr, port, dir, child: None };
            sshd.start();
            hosts.push(sshd);
        }
        std::fs::write(ssh_dir.join("config"), client).unwrap();
        std::fs::write(ssh_dir.join("known_hosts"), known).unwrap();
        t.write("wt.toml", &toml);
        t.commit("hosts");
        Lab { t, hosts }
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut c = self.t.cmd(tool);
        c.env("WT_PANE_IDLE", "30s");
        c
    }

    fn run(&self, tool: &str, args: &[&str], stdin: &str) -> Run {
        Run::of(self.cmd(tool).args(args), stdin)
    }

    /// `wt-create --host H -n N`: the records of H's new worktrees.
    fn create(&self, host: &str, n: usize) -> Vec<Value> {
        let run = self.run("wt-create", &["--host", host, "-n", &n.to_string(), "--json"], "");
        run.expect_code(0);
        let recs = run.records();
        assert_eq!(recs.len(), n, "{run}");
        recs
    }

    /// A shell pipeline of the tools (absolute paths), fed `stdin`, in the isolated env.
    fn pipeline(&self, stages: &[&str], stdin: &str) -> Child {
        let line = stages.join(" | ");
        let mut c = Command::new("sh");
        c.arg("-c").arg(line).current_dir(&self.t.repo);
        self.t.isolate(&mut c);
        c.env("WT_PANE_IDLE", "30s");
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child
    }
}

fn tool(name: &str) -> String {
    bin(name).display().to_string()
}

fn lines(recs: &[Value]) -> String {
    recs.iter().map(|r| r.to_string() + "\n").collect()
}

/// A command for wt-run: a file named after its host and worktree, committed on its branch.
const WORK: &str = "h=$(basename $(dirname $(dirname \"$WT_PATH\"))); echo \"$WT_NAME\" > \"out-$h-$WT_NAME.txt\" \
    && git add . && git -c user.name=a -c user.email=a@example.com commit -qm \"work of $h $WT_NAME\"";

#[test]
fn one_pipeline_creates_leases_runs_and_merges_on_three_hosts() {
    let lab = Lab::new(3);
    let mut recs = Vec::new();
    for h in ["h1", "h2", "h3"] {
        let made = lab.create(h, 2);
        for r in &made {
            assert_eq!(s(r, "host"), h, "{r}");
            assert!(s(r, "path").starts_with(&lab.hosts[0].dir.parent().unwrap().join(h).display().to_string()));
        }
        recs.extend(made);
    }
    // The host's repository is a real one with the worktrees git knows.
    let listed = Command::new("git").arg("-C").arg(lab.hosts[1].dir.join("repo")).args(["worktree", "list"]).output();
    assert_eq!(String::from_utf8_lossy(&listed.unwrap().stdout).lines().count(), 3);

    let env = format!("{} --json --range 43000-43999", tool("wt-env"));
    let run = format!("{} --json -- sh -c '{}'", tool("wt-run"), WORK.replace('\'', r"'\''"));
    let merge = format!("{} --json --verify 'test -f README' --cleanup", tool("wt-merge"));
    let child = lab.pipeline(&[&env, &run, &merge], &lines(&recs));
    let out = Run::from_output(child.wait_with_output().unwrap());
    out.expect_code(0);
    let merged = out.records();
    assert_eq!(merged.len(), 6, "{out}");
    for r in &merged {
        assert_eq!(r["merge"]["status"], "merged", "{out}");
        assert_eq!(r["run"]["exit"], 0, "{r}");
        assert!(r["env"]["vars"]["PORT"].as_str().is_some_and(|p| p.starts_with("43")), "{r}");
        assert_eq!(r["merge"]["cleanup"]["removed"], true, "{r}");
    }
    // All six landed in the local main, each verified, and the hosts' worktrees are gone.
    let files = lab.t.git(["ls-tree", "--name-only", "main"]);
    for h in ["h1", "h2", "h3"] {
        for n in ["agent-1", "agent-2"] {
            assert!(files.contains(&format!("out-{h}-{n}.txt")), "{files}");
        }
        let dir = lab.hosts[0].dir.parent().unwrap().join(h);
        assert!(!dir.join("repo.wt/agent-1").exists());
        // Leases were granted at the host, in its own ledger.
        assert!(dir.join("repo/.git/wt/ledger.json").exists());
    }
    assert!(!lab.t.branches().iter().any(|b| b.starts_with("hosts/")), "{:?}", lab.t.branches());
}

/// The pool at a host: `--pool` fills it there, a create claims from it there (its record comes
/// back with the host), and the ssh session ends at once: the refill the claim starts at the
/// host holds none of the session's pipes.
#[test]
fn a_pool_at_a_host_is_filled_and_claimed_there() {
    let lab = Lab::new(1);
    let filled = lab.run("wt-create", &["--host", "h1", "--pool", "1", "--json"], "");
    filled.expect_code(0);
    assert_eq!(filled.records().len(), 1, "{filled}");
    assert_eq!(filled.records()[0]["pooled"], true, "{filled}");
    let started = std::time::Instant::now();
    let claimed = lab.run("wt-create", &["--host", "h1", "x", "--json"], "");
    claimed.expect_code(0);
    // Not a speed assertion: a session held open by the refill's pipes would end only with
    // the refill (or never).
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{claimed}");
    let rec = &claimed.records()[0];
    assert_eq!((s(rec, "host"), rec["claimed"].clone()), ("h1", Value::Bool(true)), "{claimed}");
    let remote = lab.hosts[0].dir.join("repo");
    assert!(remote.with_extension("wt").join("x").join("README").is_file(), "{claimed}");
    // The refill ran at the host: its pool is full again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pool = remote.with_extension("wt").join(".pool");
        let n = std::fs::read_dir(&pool).map(|d| d.count()).unwrap_or(0);
        let log = std::fs::read_to_string(remote.join(".git/wt/pool/refill.log")).unwrap_or_default();
        if n == 1
            && !remote.join(".git/wt/pool").read_dir().unwrap().flatten().any(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                e.file_name().to_string_lossy().ends_with(".json") && text.contains("\"state\":\"filling\"")
            })
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the host's pool was not refilled: {n} there; log: {log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Is a process whose command line is exactly `argv` running?
fn running(argv: &[&str]) -> bool {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).map(|c| c == want.as_bytes()).unwrap_or(false))
}

#[test]
fn a_host_that_goes_away_mid_run_gives_errors_and_the_others_merge() {
    let mut lab = Lab::new(3);
    let mut recs = Vec::new();
    for h in ["h1", "h2", "h3"] {
        recs.extend(lab.create(h, 1));
    }
    let started = lab.t.root().join("h2-started");
    // Unique so that the test can look for it afterwards.
    let sleeper = ["sleep", "987653"];
    let cmd = format!(
        "h=$(basename $(dirname $(dirname \"$WT_PATH\"))); if [ $h = h2 ]; then touch {}; {}; fi; {WORK}",
        started.display(),
        sleeper.join(" ")
    );
    let run = format!("{} --json -- sh -c '{}'", tool("wt-run"), cmd.replace('\'', r"'\''"));
    let merge = format!("{} --json --unverified", tool("wt-merge"));
    let child = lab.pipeline(&[&run, &merge], &lines(&recs));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() || !running(&sleeper) {
        assert!(Instant::now() < deadline, "the run at h2 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.hosts[1].kill();
    let out = Run::from_output(child.wait_with_output().unwrap());
    out.expect_code(1);
    let got = out.records();
    assert_eq!(got.len(), 3, "{out}");
    for r in &got {
        if s(r, "host") == "h2" {
            assert_eq!(r["error"]["code"], "connection-lost", "{out}");
            assert_eq!(s(r, "name"), "agent-1");
        } else {
            assert_eq!(r["merge"]["status"], "merged", "{out}");
        }
    }
    // No orphan at the host: the guard ended the run's process group with the connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(&sleeper) {
        assert!(Instant::now() < deadline, "the run at h2 outlived its connection");
        std::thread::sleep(Duration::from_millis(100));
    }
    let files = lab.t.git(["ls-tree", "--name-only", "main"]);
    assert!(files.contains("out-h1-agent-1.txt") && files.contains("out-h3-agent-1.txt"), "{files}");
    assert!(!files.contains("out-h2"), "{files}");
}

#[test]
fn an_unreachable_host_gives_error_records_and_the_rest_goes_on() {
    let mut lab = Lab::new(2);
    let mut recs = lab.create("h1", 1);
    recs.extend(lab.create("h2", 1));
    lab.hosts[1].kill();
    let out = lab.run("wt-run", &["--json", "--", "true"], &lines(&recs));
    out.expect_code(1);
    let got = out.records();
    assert_eq!(got.len(), 2, "{out}");
    let h1 = got.iter().find(|r| s(r, "host") == "h1").expect("h1's record");
    assert_eq!(h1["run"]["exit"], 0, "{out}");
    let h2 = got.iter().find(|r| s(r, "host") == "h2").expect("h2's record");
    assert_eq!(h2["error"]["code"], "host-unreachable", "{out}");
}

#[test]
fn a_name_with_shell_metacharacters_is_refused_before_anything_is_sent() {
    let lab = Lab::new(1);
    let bad = "x;touch${IFS}pwned";
    let out = lab.run("wt-create", &["--host", "h1", bad], "");
    out.expect_code(2);
    assert!(out.stderr.contains("not sent to a host"), "{out}");
    lab.run("wt-run", &["--host", "h1", "-w", "a`id`", "--", "true"], "").expect_code(2);
    lab.run("wt-run", &["--host", "h1", "pane", "screen", "a|b"], "").expect_code(2);
    // A record that names a host is checked the same way, by any tool.
    let rec = serde_json::json!({"v": 1, "name": "a$(id)", "host": "h1", "path": "/x", "branch": "wt/a"});
    let out = lab.run("wt-env", &["--json"], &format!("{rec}\n"));
    out.expect_code(1);
    assert_eq!(out.records()[0]["error"]["code"], "invalid-name", "{out}");
    assert!(!lab.hosts[0].log().contains("Accepted"), "a connection was made:\n{}", lab.hosts[0].log());
}

#[test]
fn a_pane_at_a_host_is_read_and_typed_into_from_here_and_survives_a_dropped_connection() {
    let mut lab = Lab::new(1);
    lab.create("h1", 1);
    let script = "echo ready; read line; echo \"got:$line\"; sleep 60";
    let out = lab.run("wt-run", &["--host", "h1", "-w", "agent-1", "--pane", "--json", "--", "sh", "-c", script], "");
    out.expect_code(0);
    assert_eq!(s(&out.records()[0], "host"), "h1", "{out}");
    let pane = |lab: &Lab, args: &[&str]| {
        let mut all = vec!["--host", "h1", "pane"];
        all.extend(args);
        lab.run("wt-run", &all, "")
    };
    pane(&lab, &["wait", "agent-1", "--match", "ready", "--timeout", "20s"]).expect_code(0);
    pane(&lab, &["send", "agent-1", "hello", "--enter"]).expect_code(0);
    pane(&lab, &["wait", "agent-1", "--match", "got:hello", "--timeout", "20s"]).expect_code(0);
    // The connection drops; the host's supervisor holds the pane, and it is reached again.
    lab.hosts[0].kill();
    assert_eq!(pane(&lab, &["ls"]).code, Some(3));
    lab.hosts[0].start();
    let screen = pane(&lab, &["screen", "agent-1"]);
    screen.expect_code(0);
    assert!(screen.stdout.contains("got:hello"), "{screen}");
    pane(&lab, &["stop"]).expect_code(0);
}

#[test]
fn a_host_without_the_tools_says_how_to_install_them() {
    let lab = Lab::new(1);
    let toml = std::fs::read_to_string(lab.t.repo.join("wt.toml")).unwrap();
    let elsewhere = lab.t.root().join("no-tools");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let bin_dir = bin("wt-run").parent().unwrap().display().to_string();
    lab.t.write("wt.toml", &toml.replace(&bin_dir, &elsewhere.display().to_string()));
    let out = lab.run("wt-create", &["--host", "h1", "-n", "1", "--json"], "");
    out.expect_code(1);
    let rec = &out.records()[0];
    assert_eq!(rec["error"]["code"], "remote-tool-missing", "{out}");
    assert!(s(rec, "host") == "h1" && rec["error"]["message"].as_str().unwrap().contains("install"), "{out}");
    // Nothing was made there.
    assert!(!lab.hosts[0].dir.join("repo").exists());
}

#[test]
fn wt_watch_watches_a_worktree_at_its_host_and_its_record_comes_back() {
    let lab = Lab::new(1);
    let made = lab.create("h1", 1);
    // --until-green ends on a green round of a commit ahead of the base.
    lab.t.git_in(
        std::path::Path::new(made[0]["path"].as_str().unwrap()),
        ["commit", "-q", "--allow-empty", "-m", "work"],
    );
    let watch = format!("{} --json --until-green --feed none --debounce 50 -- sh -c 'test -d .'", tool("wt-watch"));
    let child = lab.pipeline(&[&watch], &lines(&made));
    let out = Run::from_output(child.wait_with_output().unwrap());
    out.expect_code(0);
    let recs = out.records();
    assert_eq!(recs.len(), 1, "{out}");
    assert_eq!(s(&recs[0], "host"), "h1", "{out}");
    assert_eq!(recs[0]["watch"]["status"], "green", "{out}");
    // The test ran at the host: its log is in the host's repository.
    let log = recs[0]["watch"]["run"]["log"].as_str().unwrap_or_default();
    assert!(log.starts_with(&lab.hosts[0].dir.display().to_string()), "{log}");
}
