//! The kill -9 harness: the binary is started, killed with SIGKILL after a
//! random time, checked, and started again, over and over.
//!
//! `HERMES_TORTURE_KILLS` sets how many kills each scenario makes (a few by
//! default, so `cargo test` stays quick; `just torture` makes 1,000), and
//! `HERMES_TORTURE_SEED` replays a run (each scenario prints its seed).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::component_cache;

/// Kills per scenario.
pub fn kills() -> usize {
    std::env::var("HERMES_TORTURE_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(6)
}

/// The random source of one scenario, its seed printed so a failure can be
/// replayed.
pub fn rng(scenario: &str) -> fastrand::Rng {
    let seed = std::env::var("HERMES_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{scenario}: HERMES_TORTURE_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

/// What a scenario did, for the table in RELIABILITY.md.
#[derive(Debug, Default)]
pub struct Tally {
    /// SIGKILLs sent.
    pub kills: usize,
    /// Of those, how many came while the work was under way (some of it
    /// acknowledged, not all): the kills that test recovery, not start-up.
    pub mid_work: usize,
    /// Runs that finished before their kill came.
    pub finished: usize,
    /// Events the scenario moved in all, over its rounds.
    pub events: usize,
    /// Rounds: each starts from an empty bus and goes on until all is done.
    pub rounds: usize,
}

impl Tally {
    /// Counts a run that started at `began`: one that finished must have
    /// succeeded, and its time raises `undisturbed`; one that was killed
    /// counts as a kill, mid-work when `mid_work` says some but not all of
    /// the work was done.
    pub fn record(
        &mut self,
        scenario: &str,
        run: &Run,
        began: Instant,
        undisturbed: &mut Option<Duration>,
        mid_work: bool,
    ) {
        match run.exited {
            Some(status) => {
                assert!(status.success(), "{scenario}: {}", run.stderr);
                self.finished += 1;
                *undisturbed = (*undisturbed).max(Some(began.elapsed()));
            }
            None => {
                self.kills += 1;
                if mid_work {
                    self.mid_work += 1;
                }
            }
        }
    }

    /// One line of the scenario table.
    pub fn print(&self, scenario: &str, started: Instant) {
        println!(
            "| {scenario} | {} | {} | {} | {} | {} | {:.0} s |",
            self.kills,
            self.mid_work,
            self.finished,
            self.rounds,
            self.events,
            started.elapsed().as_secs_f64()
        );
    }
}

/// When a run is killed.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// This long after it starts.
    After(Duration),
    /// Once it has printed this many lines on stdout (each an
    /// acknowledgement), and then this long: a kill in the middle of the
    /// work, wherever the next write stands.
    AfterLines(usize, Duration),
}

/// One run of the binary: killed as `kill` says, unless it ends first.
pub struct Run {
    /// Whether it ended by itself (and its exit status), rather than being
    /// killed.
    pub exited: Option<std::process::ExitStatus>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs `hermes-wasm args` in `dir`, killing it with SIGKILL as `kill`
/// says if it is still running.
pub fn run_killed(dir: &Path, args: &[&str], kill: Kill) -> Run {
    let mut child: Child = std::process::Command::new(env!("CARGO_BIN_EXE_hermes-wasm"))
        .args(args)
        .current_dir(dir)
        .env("HERMES_WASM_CACHE", component_cache())
        .env_remove("HERMES_WASM_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        while let Ok(n @ 1..) = out.read(&mut buf) {
            for &b in &buf[..n] {
                line.push(b);
                if b == b'\n' {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    all.push_str(&text);
                    let _ = lines_tx.send(text);
                    line.clear();
                }
            }
        }
        all.push_str(&String::from_utf8_lossy(&line));
        all
    });
    let started = Instant::now();
    let mut seen = 0usize;
    let mut deadline = match kill {
        Kill::After(after) => Some(started + after),
        Kill::AfterLines(0, then) => Some(started + then),
        Kill::AfterLines(..) => None,
    };
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        while lines_rx.try_recv().is_ok() {
            seen += 1;
            if let Kill::AfterLines(lines, then) = kill
                && seen == lines
            {
                deadline = Some(Instant::now() + then);
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            break None;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let stdout = reader.join().expect("the reader");
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("stderr");
    }
    Run {
        exited,
        stdout,
        stderr,
    }
}

/// A time to kill at: anywhere from the start to a little past how long an
/// undisturbed run takes.
pub fn kill_at(rng: &mut fastrand::Rng, undisturbed: Duration) -> Duration {
    let most = undisturbed.as_micros().max(1_000) as u64 * 6 / 5;
    Duration::from_micros(rng.u64(0..=most))
}
