//! The `idp` command: serve, migrate, manage clients and users, print configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod demo;
mod factors_cli;
mod identity_cli;
mod keys_cli;
mod password_cli;
mod push_cli;

#[derive(Parser)]
#[command(name = "idp", version, about = "Propusk identity provider")]
struct Args {
    /// Configuration file (default: ./idp.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Embedded demo: dev mode, SQLite, in-process cache, a demo citizen and portal.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations.
    Migrate,
    /// Manage relying portals (clients).
    Clients {
        #[command(subcommand)]
        action: cli::ClientAction,
    },
    /// Manage citizen accounts.
    Users {
        #[command(subcommand)]
        action: cli::UserAction,
    },
    /// Signing keys, master key and data keys.
    Keys {
        #[command(subcommand)]
        action: keys_cli::KeyAction,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the default configuration as TOML.
    PrintDefault,
    /// Measure the password checks per second this machine sustains with the configured
    /// argon2id parameters and workers (`[password]`): the most fresh password sign-ins a
    /// node can serve. Uses the cores for the time given; run it on an idle machine.
    PasswordCapacity {
        /// Seconds to measure for.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    idp::telemetry_init();
    let result = match args.command {
        Command::Config {
            action: ConfigAction::PrintDefault,
        } => {
            print!("{}", idp::config::Config::default_toml());
            Ok(())
        }
        Command::Config {
            action: ConfigAction::PasswordCapacity { seconds, json },
        } => cli::password_capacity(args.config.as_deref(), seconds, json),
        Command::Serve { listen, demo } => cli::serve(args.config.as_deref(), listen, demo),
        Command::Migrate => cli::migrate(args.config.as_deref()),
        Command::Clients { action } => cli::clients(args.config.as_deref(), action),
        Command::Users { action } => cli::users(args.config.as_deref(), action),
        Command::Keys { action } => keys_cli::run(args.config.as_deref(), action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
