//! `lifeline devnet --hold` leaves nothing running behind it: not on SIGTERM (it stops its
//! keepers, gateway and anvil), and not even when it is SIGKILLed (the kernel kills its
//! children: PR_SET_PDEATHSIG). Descendants are found by walking `/proc/*/stat` parent links.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

/// A process seen in /proc: pid, parent, state letter, command name.
struct Proc {
    pid: u32,
    ppid: u32,
    state: char,
    comm: String,
}

fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        Some(Proc { pid, ppid, state, comm: stat[open + 1..close].to_string() })
    })
    .collect()
}

/// Every descendant of `root` (children, their children, ...), with its command name.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let all = processes();
    let mut found: Vec<(u32, String)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            found.push((p.pid, p.comm.clone()));
            frontier.push(p.pid);
        }
    }
    found
}

/// Still running: present and not a zombie (a zombie is dead, only not yet reaped).
fn running(pid: u32) -> bool {
    processes().iter().any(|p| p.pid == pid && p.state != 'Z')
}

/// `lifeline devnet --hold`, started and waited for until it holds.
struct HeldDevnet {
    child: Child,
    /// Lines of its stdout, for failure messages.
    output: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl HeldDevnet {
    fn start() -> eyre::Result<Self> {
        let mut child = Command::new(LIFELINE)
            .args(["devnet", "--hold"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, output) = mpsc::channel();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            // Keeps reading to the end, so the devnet never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut devnet = Self { child, output, seen: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !devnet.seen.iter().any(|l| l.starts_with("holding")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match devnet.output.recv_timeout(left) {
                Ok(line) => devnet.seen.push(line),
                Err(_) => {
                    eyre::bail!("devnet did not hold within 180 s:\n{}", devnet.seen.join("\n"))
                }
            }
        }
        Ok(devnet)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its descendants now; checks they include anvil and the keepers.
    fn family(&self) -> Vec<(u32, String)> {
        let family = descendants(self.pid());
        let names: Vec<&str> = family.iter().map(|(_, comm)| comm.as_str()).collect();
        assert!(names.contains(&"anvil"), "anvil among the descendants: {family:?}");
        assert!(
            names.iter().filter(|n| **n == "lifeline").count() >= 3,
            "three keepers among the descendants: {family:?}"
        );
        family
    }

    /// Waits up to `limit` for the devnet and every pid of `family` to be gone; kills (by PID)
    /// and reports whatever is left.
    fn assert_all_gone(&mut self, family: &[(u32, String)], limit: Duration) {
        let start = Instant::now();
        let mut left: Vec<(u32, String)>;
        loop {
            let _ = self.child.try_wait();
            left = family.iter().filter(|(pid, _)| running(*pid)).cloned().collect();
            if left.is_empty() && !running(self.pid()) {
                break;
            }
            if start.elapsed() > limit {
                for (pid, _) in &left {
                    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
                while let Ok(line) = self.output.try_recv() {
                    self.seen.push(line);
                }
                panic!(
                    "still running {:?} after {limit:?}: {left:?}\n{}",
                    start.elapsed(),
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HeldDevnet {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET `url` (http://127.0.0.1:port/path) with a plain socket; the whole response.
fn http_get(url: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn devnet_hold_sigterm_leaves_no_orphans() -> eyre::Result<()> {
    let mut devnet = HeldDevnet::start()?;
    // Its output (stdout and stderr, not terminals here): the timeline, without colour codes
    // or library INFO lines in between.
    let text = devnet.seen.join("\n");
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes:\n{text}");
    assert!(!text.contains(" INFO "), "no INFO lines in the timeline:\n{text}");
    // The keeper named as flagging the endpoint is one of the devnet's keepers (the signer of
    // the attestation, not the account that relayed it).
    let keepers: Vec<&str> = devnet
        .seen
        .iter()
        .filter(|l| l.contains("] keeper "))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("0x")))
        .collect();
    let flagged = devnet
        .seen
        .iter()
        .find(|l| l.contains(" flagged endpoint "))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("0x")))
        .ok_or_else(|| eyre::eyre!("no 'flagged endpoint' line:\n{text}"))?;
    assert!(keepers.contains(&flagged), "{flagged} is not a keeper {keepers:?}:\n{text}");
    let family = devnet.family();
    let status = Command::new("kill").arg("-TERM").arg(devnet.pid().to_string()).status()?;
    assert!(status.success());
    devnet.assert_all_gone(&family, Duration::from_secs(5));
    let exit = devnet.child.wait()?;
    assert!(exit.success(), "SIGTERM while holding is a normal stop: {exit}");
    Ok(())
}

#[test]
fn devnet_hold_sigkill_leaves_no_orphans() -> eyre::Result<()> {
    let mut devnet = HeldDevnet::start()?;
    // Each keeper serves /metrics on a port of its own (all three used to want 9464).
    let urls: Vec<String> = devnet
        .seen
        .iter()
        .filter(|l| l.contains("] keeper "))
        .filter_map(|l| {
            l.split_whitespace().find(|w| w.trim_end_matches(',').ends_with("/metrics"))
        })
        .map(|w| w.trim_end_matches(',').to_string())
        .collect();
    assert_eq!(urls.len(), 3, "one metrics URL per keeper: {:?}", devnet.seen);
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{urls:?}");
    for url in &urls {
        let response = http_get(url)?;
        assert!(response.starts_with("HTTP/1.1 200"), "{url}: {response}");
        assert!(response.contains("lifeline_"), "{url}: {response}");
    }
    let family = devnet.family();
    devnet.child.kill()?; // SIGKILL: no handler runs, only the kernel can stop the children.
    devnet.assert_all_gone(&family, Duration::from_secs(5));
    Ok(())
}
