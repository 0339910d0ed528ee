//! `report`: run a benchmark suite, print the table, write
//! `<out>/<suite>.json` and `<out>/<suite>.svg`. Both files are rewritten
//! after every record, so a run that is stopped keeps what it measured.

use clap::Parser;
use converge_benches::record::{table, to_json};
use converge_benches::runner::{run_areas, AREAS};
use converge_benches::{svg, Record, Suite};
use std::path::{Path, PathBuf};
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
    /// Run only these areas (join, local, scale, remote, read, aae,
    /// bigset); all if empty.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Write the JSON list and the plot of `records`.
fn write_results(out: &Path, suite: Suite, records: &[Record]) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(format!("{suite}.json")), to_json(records))?;
    std::fs::write(
        out.join(format!("{suite}.svg")),
        svg::plot(suite.name(), records),
    )
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
    let mut so_far: Vec<Record> = Vec::new();
    let mut progress = |r: &Record| {
        let ratio = r.ratio().map(|x| format!(" ({x:.2}x)")).unwrap_or_default();
        eprintln!(
            "  [{:>5.0}s] {} = {}{}",
            start.elapsed().as_secs_f64(),
            r.name,
            converge_benches::record::human(r.value),
            ratio
        );
        so_far.push(r.clone());
        if let Err(e) = write_results(&args.out, args.suite, &so_far) {
            eprintln!(
                "cannot write partial results to {}: {e}",
                args.out.display()
            );
        }
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
    if let Err(e) = write_results(&args.out, args.suite, &records) {
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
