//! `report`: run a benchmark suite, print the table, write
//! `<out>/<suite>.json` and `<out>/<suite>.svg`.

use clap::Parser;
use converge_benches::record::{table, to_json};
use converge_benches::runner::{run_areas, AREAS};
use converge_benches::{svg, Suite};
use std::path::PathBuf;
use std::process::ExitCode;

/// Converge merge-throughput benchmarks, with peers side by side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Suite: smoke (tiny, every workload once), quick, full.
    #[arg(long, default_value = "quick")]
    suite: Suite,
    /// Directory for <suite>.json and <suite>.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Run only these areas (join, local, remote, read, aae); all if empty.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let areas: Vec<&str> = if args.only.is_empty() {
        AREAS.to_vec()
    } else {
        args.only.iter().map(String::as_str).collect()
    };
    let start = std::time::Instant::now();
    eprintln!("suite {} ({}): measuring", args.suite, areas.join(", "));
    let mut progress = |r: &converge_benches::Record| {
        let ratio = r.ratio().map(|x| format!(" ({x:.2}x)")).unwrap_or_default();
        eprintln!(
            "  [{:>5.0}s] {} = {}{}",
            start.elapsed().as_secs_f64(),
            r.name,
            converge_benches::record::human(r.value),
            ratio
        );
    };
    let records = match run_areas(args.suite, &areas, &mut progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", table(&records));
    let json = args.out.join(format!("{}.json", args.suite));
    let plot = args.out.join(format!("{}.svg", args.suite));
    let written = std::fs::create_dir_all(&args.out)
        .and_then(|_| std::fs::write(&json, to_json(&records)))
        .and_then(|_| std::fs::write(&plot, svg::plot(args.suite.name(), &records)));
    if let Err(e) = written {
        eprintln!("cannot write results to {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {} and {} ({} records, {:.0}s)",
        json.display(),
        plot.display(),
        records.len(),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
