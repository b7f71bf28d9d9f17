//! `plenum`: the signaling server, a headless peer, and benchmarks.

mod audio;
mod bench;
mod bench_audio;
mod bench_board;
mod bench_host;
mod bench_relay;
mod bench_resume;
mod bench_signal;
mod bench_stall;
mod bench_tree;
mod bench_turn;
mod bench_video;
mod devices;
mod join;
mod serve;
mod sim;
mod token;
mod video;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "plenum", version, about = "Peer-to-peer rooms over WebRTC")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a signaling server.
    Serve(serve::ServeArgs),
    /// Join a room as a headless peer.
    Join(Box<join::JoinArgs>),
    /// Measure and print figures as JSON.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Simulate an overlay of many peers on a virtual clock; print its figures as JSON.
    Sim(sim::SimArgs),
    /// Mint a room token for a server started with --token-secret-file.
    Token(token::TokenArgs),
    /// List microphones, speakers and cameras.
    Devices {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            init_logs("info");
            runtime.block_on(serve::run(args))
        }
        Command::Join(args) => {
            // webrtc-rs warns about routine ICE and DTLS conditions; keep stderr for ours.
            init_logs("warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_sctp=error,webrtc=error");
            let code = runtime.block_on(join::run(*args))?;
            // Links close in background tasks; do not wait for them on the way out.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            std::process::exit(code);
        }
        Command::Token(args) => token::run(args),
        Command::Sim(args) => {
            init_logs("warn");
            sim::run(args)
        }
        Command::Devices { json } => {
            init_logs("warn");
            devices::run(json);
            Ok(())
        }
        Command::Bench(command) => {
            init_logs("warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_sctp=error,webrtc=error");
            runtime.block_on(bench::run(command))
        }
    }
}
