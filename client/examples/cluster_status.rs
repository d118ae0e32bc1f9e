//! Prints the cluster's members, leader, term and applied index:
//! `cargo run -p skiff-client --example cluster_status -- [--wait SECS] --config FILE [HOST:PORT,...]`
//! FILE is a Skiff client config (a member's `admin.conf`; default `$SKIFF_CONFIG`);
//! endpoints override its servers.

use std::time::Duration;

use skiff_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut wait = None;
    let mut endpoints = None;
    let mut config = std::env::var("SKIFF_CONFIG").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--wait" => wait = Some(args.next().ok_or("--wait needs seconds")?.parse::<u64>()?),
            "--config" => config = Some(args.next().ok_or("--config needs a file")?),
            other => endpoints = Some(other.to_string()),
        }
    }
    let config = config.ok_or("give --config FILE (or set SKIFF_CONFIG)")?;
    let mut builder = Client::builder_from_config(&config, None)?;
    if let Some(endpoints) = endpoints {
        builder = builder.endpoints([endpoints]);
    }
    let client = builder.build()?;
    if let Some(secs) = wait {
        client.wait_ready(Duration::from_secs(secs)).await?;
    }
    let status = client.cluster_status().await?;
    let leader = status
        .leader_id
        .map_or("none".to_string(), |l| l.to_string());
    println!(
        "leader: {leader}   term: {}   applied: {}",
        status.term, status.last_applied
    );
    println!(
        "{:<4} {:<22} {:<7} {:<10} {:<8} {:>8} {:>8}",
        "ID", "ADDRESS", "VOTER", "STATE", "HEALTHY", "TERM", "APPLIED"
    );
    for m in &status.members {
        println!(
            "{:<4} {:<22} {:<7} {:<10} {:<8} {:>8} {:>8}{}",
            m.id,
            m.address,
            m.voter,
            m.state,
            m.healthy,
            m.term,
            m.last_applied,
            if m.error.is_empty() {
                String::new()
            } else {
                format!("  ({})", m.error)
            }
        );
    }
    Ok(())
}
