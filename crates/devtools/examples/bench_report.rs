//! Turns the criterion results of `cargo bench -p tokenloom-devtools --bench kernels` into the markdown table of
//! docs/benchmarks/criterion-2026-11-28.md: median and minimum time per kernel, throughput,
//! and the ratio to the faster `roofline_copy_*` measured in the same group of the same run
//! (as throughputs: a kernel that reads fewer bytes than the copy, a quantized table, is
//! compared by bandwidth).
//!
//! Run: `cargo bench -p tokenloom-devtools --bench kernels && cargo run --release -p tokenloom-devtools --example bench_report`.
//!
//! With the argument `vs_plain` it prints instead the table of `benches/vs_plain.rs`: each
//! tokenloom kernel's median and minimum beside the plain loop's on the same thread
//! count, and their ratios (for the GEMM, against the fastest GEMM of the group).

use std::error::Error;
use std::fs;
use std::path::Path;

use serde_json::Value;

struct Row {
    function: String,
    median_ns: f64,
    min_ns: f64,
    throughput: Option<(String, f64)>,
}

fn read_json(path: &Path) -> Result<Value, Box<dyn Error>> {
    Ok(serde_json::from_str(&fs::read_to_string(path)?)?)
}

fn read_row(dir: &Path) -> Result<Row, Box<dyn Error>> {
    let new = dir.join("new");
    let estimates = read_json(&new.join("estimates.json"))?;
    let sample = read_json(&new.join("sample.json"))?;
    let benchmark = read_json(&new.join("benchmark.json"))?;
    let median_ns = estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or("no median")?;
    let iters = sample["iters"].as_array().ok_or("no iters")?;
    let times = sample["times"].as_array().ok_or("no times")?;
    let min_ns = iters
        .iter()
        .zip(times)
        .filter_map(|(i, t)| Some(t.as_f64()? / i.as_f64()?))
        .fold(f64::INFINITY, f64::min);
    let throughput = benchmark["throughput"].as_object().and_then(|t| {
        let (kind, amount) = t.iter().next()?;
        Some((kind.clone(), amount.as_f64()?))
    });
    Ok(Row {
        function: benchmark["function_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        median_ns,
        min_ns,
        throughput,
    })
}

/// The bytes a row's throughput counts, when it counts bytes.
fn bytes_of(row: &Row) -> Option<f64> {
    match &row.throughput {
        Some((kind, amount)) if kind == "Bytes" => Some(*amount),
        _ => None,
    }
}

fn format_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let root = tokenloom_devtools::workspace_root().join("target/criterion");
    let mut groups: Vec<_> = fs::read_dir(&root)
        .map_err(|e| {
            format!(
                "{}: {e} (run `cargo bench -p tokenloom-devtools --bench kernels` first)",
                root.display()
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "report"))
        .collect();
    groups.sort();
    if std::env::args().nth(1).as_deref() == Some("vs_plain") {
        return vs_plain_table(&groups);
    }
    for group in groups {
        let mut rows = rows_of(&group)?;
        let is_roofline = |r: &Row| r.function.starts_with("roofline_copy");
        rows.sort_by(|a, b| {
            is_roofline(b)
                .cmp(&is_roofline(a))
                .then(a.function.cmp(&b.function))
        });
        // The roofline is the faster of the single-threaded and the threaded copy. A
        // kernel's ratio compares throughputs, so a kernel that moves fewer bytes than the
        // copy (a quantized table) is measured against the bandwidth, not the copy's time.
        let roofline = rows
            .iter()
            .filter(|r| is_roofline(r))
            .min_by(|a, b| a.median_ns.total_cmp(&b.median_ns))
            .map(|r| (r.median_ns, bytes_of(r)));
        println!(
            "\n### {}\n",
            group.file_name().unwrap_or_default().to_string_lossy()
        );
        println!("| kernel | median | min | throughput (median) | ratio to roofline (median) |");
        println!("|---|---|---|---|---|");
        for r in &rows {
            let throughput = match &r.throughput {
                Some((kind, amount)) if kind == "Bytes" => {
                    format!("{:.2} GB/s", amount / r.median_ns)
                }
                Some((_, amount)) => format!("{:.1} GFLOP/s", amount / r.median_ns),
                None => "–".to_owned(),
            };
            let ratio = roofline.map_or("–".to_owned(), |(t, roof_bytes)| {
                let bytes_ratio = match (bytes_of(r), roof_bytes) {
                    (Some(own), Some(roof)) => own / roof,
                    _ => 1.0,
                };
                format!("{:.2}×", t / r.median_ns * bytes_ratio)
            });
            println!(
                "| {} | {} | {} | {} | {} |",
                r.function,
                format_time(r.median_ns),
                format_time(r.min_ns),
                throughput,
                ratio
            );
        }
    }
    Ok(())
}

fn rows_of(group: &Path) -> Result<Vec<Row>, Box<dyn Error>> {
    fs::read_dir(group)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("new/estimates.json").is_file())
        .map(|p| read_row(&p))
        .collect()
}

/// The `vs_plain_*` groups: `tokenloom*_tN` beside `plain_tN` (or, for the GEMM, beside the
/// fastest other GEMM of the same thread count; matrixmultiply's own threads count as 2).
fn vs_plain_table(groups: &[std::path::PathBuf]) -> Result<(), Box<dyn Error>> {
    println!(
        "| case | kernel | threads | median | min | baseline | baseline median | baseline min | ratio (median) | ratio (min) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for group in groups {
        let name = group.file_name().unwrap_or_default().to_string_lossy();
        let Some(case) = name.strip_prefix("vs_plain_") else {
            continue;
        };
        let rows = rows_of(group)?;
        let threads_of = |f: &str| -> usize {
            f.rsplit_once("_t")
                .and_then(|(_, t)| t.parse().ok())
                .unwrap_or(2)
        };
        let mut kernels: Vec<&Row> = rows
            .iter()
            .filter(|r| r.function.starts_with("tokenloom"))
            .collect();
        kernels.sort_by_key(|r| (threads_of(&r.function), r.function.clone()));
        for k in kernels {
            let threads = threads_of(&k.function);
            let baseline = if case.starts_with("gemm") {
                rows.iter()
                    .filter(|r| {
                        !r.function.starts_with("tokenloom") && threads_of(&r.function) == threads
                    })
                    .min_by(|a, b| a.median_ns.total_cmp(&b.median_ns))
            } else {
                rows.iter()
                    .find(|r| r.function == format!("plain_t{threads}"))
            };
            let Some(b) = baseline else { continue };
            let kernel = k
                .function
                .rsplit_once("_t")
                .map_or(k.function.as_str(), |(n, _)| n);
            let base = b
                .function
                .rsplit_once("_t")
                .map_or(b.function.as_str(), |(n, _)| n);
            println!(
                "| {case} | {kernel} | {threads} | {} | {} | {base} | {} | {} | {:.2}× | {:.2}× |",
                format_time(k.median_ns),
                format_time(k.min_ns),
                format_time(b.median_ns),
                format_time(b.min_ns),
                k.median_ns / b.median_ns,
                k.min_ns / b.min_ns,
            );
        }
    }
    Ok(())
}
