//! `converge`: the command-line tool. `converge demo` shows two replicas
//! diverging and converging; the other commands inspect a store.

mod demo;

use clap::{Parser, Subcommand};
use converge::{Engine, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "converge",
    version,
    about = "Converge replication storage engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Two replicas diverge during a partition and converge again.
    Demo,
    /// List keys (optionally by prefix) with their CRDT types.
    Keys {
        /// Store directory.
        dir: PathBuf,
        /// Only keys starting with this prefix.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Print a key's value.
    Get {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
    },
    /// Print the anti-entropy root and check it against the data.
    Verify {
        /// Store directory.
        dir: PathBuf,
    },
}

fn open_existing(dir: &PathBuf) -> converge::Result<Engine> {
    let opts = Options {
        create_if_missing: false,
        ..Options::default()
    };
    Engine::open(dir, opts)
}

fn run(cli: Cli) -> converge::Result<()> {
    match cli.cmd {
        Cmd::Demo => demo::run(),
        Cmd::Keys { dir, prefix } => {
            let e = open_existing(&dir)?;
            for item in e.keys(prefix.as_bytes())? {
                let (k, t) = item?;
                println!("{}\t{}", String::from_utf8_lossy(&k), t);
            }
            Ok(())
        }
        Cmd::Get { dir, key } => {
            let e = open_existing(&dir)?;
            match e.read(key.as_bytes())? {
                None => println!("(absent)"),
                Some(v) => println!("{}", demo::show(&v)),
            }
            Ok(())
        }
        Cmd::Verify { dir } => {
            let e = open_existing(&dir)?;
            let root = e.root()?;
            let report = e.verify()?;
            println!("root {:032x}  keys {}", root.hash, root.count);
            println!(
                "{}",
                if report.consistent {
                    "tree consistent with the data"
                } else {
                    "TREE INCONSISTENT with the data"
                }
            );
            if report.consistent {
                Ok(())
            } else {
                Err(converge::Error::Corruption(format!(
                    "{} segments differ",
                    report.bad_segments.len()
                )))
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("converge: {e}");
            ExitCode::FAILURE
        }
    }
}
