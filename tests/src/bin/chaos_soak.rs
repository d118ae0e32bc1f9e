//! The chaos suite's soak: faults picked at random (seeded) on a loop for `--duration`,
//! under concurrent writers and readers; prints the per-fault figures and the
//! linearizability checker's report, and exits non-zero on any violation.
//!
//! `cargo run --release -p skiff-tests --bin chaos-soak -- --duration 30m --seed 42`
//! (as root, with /bin/busybox).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use skiff_tests::chaos::{self, ChaosConfig};

#[derive(Parser)]
#[command(about = "Chaos soak of a Skiff cluster on test hosts")]
struct Args {
    /// How long to inject faults (e.g. 30m, 2h).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and the load's key choices (random when left out).
    #[arg(long)]
    seed: Option<u64>,
    /// Test hosts (members on the first three, an agent on each).
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Registers the writers and readers share.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// The members' --pod-eviction-timeout.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
    /// The members' --snapshot-after-entries.
    #[arg(long, default_value_t = 500)]
    snapshot_after_entries: u64,
    /// The members' --log-entries-kept.
    #[arg(long, default_value_t = 100)]
    log_entries_kept: u64,
    /// Pause of each writer and reader between two operations.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    op_pause: Duration,
    /// Where logs and the failing history go on failure (default: a temp dir).
    #[arg(long)]
    failure_dir: Option<PathBuf>,
    /// Keep the members' and agents' logs there also when the run passes (to read what
    /// happened around one slow fault).
    #[arg(long)]
    keep_logs: bool,
    /// A flag for every member, after the others (repeat it; e.g.
    /// `--member-arg=--election-timeout-min --member-arg=150ms`).
    #[arg(long = "member-arg", allow_hyphen_values = true)]
    member_args: Vec<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    skiff_api::duration::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !nix::unistd::Uid::effective().is_root()
        || !std::path::Path::new(skiff_tests::host::BUSYBOX).exists()
    {
        eprintln!("chaos-soak needs root and {}", skiff_tests::host::BUSYBOX);
        return ExitCode::FAILURE;
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "chaos soak: seed {seed}, {:?}, {} hosts ({})",
        args.duration,
        args.hosts,
        skiff_tests::host::machine_info()
    );
    if !args.member_args.is_empty() {
        println!("members also get: {}", args.member_args.join(" "));
    }
    let config = ChaosConfig {
        hosts: args.hosts,
        writers: args.writers,
        readers: args.readers,
        keys: args.keys,
        pod_eviction_timeout: args.pod_eviction_timeout,
        snapshot_after_entries: args.snapshot_after_entries,
        log_entries_kept: args.log_entries_kept,
        op_pause: args.op_pause,
        failure_dir: args.failure_dir,
        keep_logs: args.keep_logs,
        member_args: args.member_args,
        ..ChaosConfig::soak(seed, args.duration)
    };
    match chaos::run(config) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chaos soak FAILED (seed {seed}): {e:#}");
            ExitCode::FAILURE
        }
    }
}
