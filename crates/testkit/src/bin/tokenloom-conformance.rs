//! `tokenloom-conformance`: runs the conformance kit on tokenloom's own kernels (every
//! check, every dtype) and prints the report — the reference a framework's report is read
//! against, and a quick way to see the kit's cases and tolerances.
//!
//! ```sh
//! cargo run -p tokenloom-testkit --bin tokenloom-conformance -- [--seed N] [--cases N] [--json]
//! ```
//!
//! Exits with status 1 when a check fails, 2 on a bad argument.

use std::process::ExitCode;

use tokenloom_testkit::kit::Kit;
use tokenloom_testkit::kit::tokenloom_adapter::Tokenloom;

const USAGE: &str = "usage: tokenloom-conformance [--seed N] [--cases N] [--json]";

fn main() -> ExitCode {
    let mut kit = Kit::new();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let value = args.next().ok_or(format!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{name} takes a non-negative integer, not {value:?}"))
        };
        let parsed = match arg.as_str() {
            "--json" => {
                json = true;
                Ok(())
            }
            "--seed" => number("--seed").map(|seed| kit = kit.clone().with_seed(seed)),
            "--cases" => number("--cases").and_then(|n| {
                let n = u32::try_from(n).map_err(|_| format!("--cases {n} is too large"))?;
                kit = kit.clone().with_cases(n);
                Ok(())
            }),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(message) = parsed {
            eprintln!("tokenloom-conformance: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    kit.check_lookup(&Tokenloom)
        .check_embedding_backward(&Tokenloom)
        .check_rope(&Tokenloom)
        .check_rope_frequencies(&Tokenloom)
        .check_logits(&Tokenloom)
        .check_sinusoidal(&Tokenloom);
    let report = kit.finish();
    if json {
        println!("{:#}", report.to_json());
    } else {
        println!("{report}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
