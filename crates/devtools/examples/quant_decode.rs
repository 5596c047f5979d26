//! Quantized tables as ggml quantizes them: tokenloom's decoding and decode logits checked
//! against ggml's and against the exact logits, then timed (issue 30;
//! docs/benchmarks/quantized.md, "Quantized decode logits and ggml").
//!
//! Run through `bash crates/devtools/scripts/ggml_peer.sh`, which builds ggml, writes the
//! tables (`<dir>/<type>.table`, `<type>.decoded.f32`, `<type>.ggml1.f32`,
//! `<type>.ggml8.f32`, `hidden.f32`) and calls
//!
//! ```text
//! quant_decode --ggml <dir> --rows 32000 --cols 2048 --formats "q8_0 q4_K …" [--time-only]
//! ```
//!
//! Without `--time-only` it prints, per format: how many of the 64 rows ggml decoded have
//! tokenloom's bits; the largest error of tokenloom's and of ggml's logits (1 and 8 tokens)
//! against the exact logits of the dequantized table (summed in `f64`), relative to the
//! largest exact logit; then one interleaved run of the one-token logits of every format
//! beside the dense `f32` table's (read rate in GB/s of the bytes each reads, and its
//! ratio to the `f32` table's), the 8-token logits per token, and the (8, 512) lookup
//! beside a copy of the same `f32` output. With `--time-only`, one line per format and
//! token count in the format of the ggml peer's.

use std::hint::black_box;
use std::time::Duration;

use tokenloom::embedding::{Embedding, QuantizedEmbedding};
use tokenloom::io::{BlockCodec, GgmlType, QuantizedMatrix};
use tokenloom::tensor::{
    Accumulate, Operand, TensorView, TensorViewMut, for_each_chunk_mut, matmul_into,
};
use tokenloom_devtools::interleave::{Contender, time_interleaved};

struct Args {
    dir: std::path::PathBuf,
    rows: usize,
    cols: usize,
    formats: Vec<String>,
    time_only: bool,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut dir, mut rows, mut cols, mut formats, mut time_only) =
        (None, 32000, 2048, Vec::new(), false);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--ggml" => dir = Some(value().into()),
            "--rows" => rows = value().parse().expect("--rows: a number"),
            "--cols" => cols = value().parse().expect("--cols: a number"),
            "--formats" => formats = value().split_whitespace().map(str::to_owned).collect(),
            "--time-only" => time_only = true,
            other => panic!("unknown argument {other}"),
        }
    }
    Args {
        dir: dir.expect("--ggml <dir>: the directory ggml_peer wrote"),
        rows,
        cols,
        formats,
        time_only,
    }
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The tokenloom type of a ggml type name (`q4_K`, `iq4_xs`, …).
fn qtype(ggml_name: &str) -> GgmlType {
    *BlockCodec::formats()
        .iter()
        .find(|q| q.name().eq_ignore_ascii_case(ggml_name))
        .unwrap_or_else(|| panic!("tokenloom has no block format {ggml_name}"))
}

/// Largest `|got − exact|` relative to the largest `|exact|`.
fn relative_error(got: &[f32], exact: &[f64]) -> f64 {
    let scale = exact.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(exact)
        .fold(0.0f64, |m, (&g, &e)| m.max((f64::from(g) - e).abs()));
    err / scale
}

fn check(args: &Args, name: &str, table: &QuantizedEmbedding, hidden: &[f32]) {
    let (rows, cols) = (args.rows, args.cols);
    let ggml_decoded = read_f32(&args.dir.join(format!("{name}.decoded.f32")));
    let mut row = vec![0.0f32; cols];
    let same = (0..ggml_decoded.len() / cols)
        .filter(|&r| {
            table.table().row_into(r, &mut row).unwrap();
            row.iter()
                .zip(&ggml_decoded[r * cols..(r + 1) * cols])
                .all(|(a, b)| a.to_bits() == b.to_bits())
        })
        .count();
    let dense = table.to_dense::<f32>().unwrap();
    let dense = dense.weight().as_slice();
    let mut line = format!("| {name} | {same} of {} |", ggml_decoded.len() / cols);
    for n in [1usize, 8] {
        let exact: Vec<f64> = (0..n * rows)
            .map(|i| {
                let (t, r) = (i / rows, i % rows);
                hidden[t * cols..(t + 1) * cols]
                    .iter()
                    .zip(&dense[r * cols..(r + 1) * cols])
                    .map(|(&h, &w)| f64::from(h) * f64::from(w))
                    .sum()
            })
            .collect();
        let mut ours = vec![0.0f32; n * rows];
        let h = TensorView::new(&hidden[..n * cols], &[n, cols]).unwrap();
        table
            .logits_into(h, 1.0, (&mut ours[..], [n, rows]))
            .unwrap();
        let ggml = read_f32(&args.dir.join(format!("{name}.ggml{n}.f32")));
        line += &format!(
            " {:.1e} | {:.1e} |",
            relative_error(&ours, &exact),
            relative_error(&ggml, &exact)
        );
    }
    println!("{line}");
}

fn main() {
    let args = args();
    let (rows, cols) = (args.rows, args.cols);
    let hidden = read_f32(&args.dir.join("hidden.f32"));
    let tables: Vec<(String, QuantizedEmbedding)> = args
        .formats
        .iter()
        .map(|name| {
            let bytes = std::fs::read(args.dir.join(format!("{name}.table"))).unwrap();
            let matrix = QuantizedMatrix::from_bytes(qtype(name), bytes, rows, cols).unwrap();
            (name.clone(), QuantizedEmbedding::new(matrix).unwrap())
        })
        .collect();
    if !args.time_only {
        println!(
            "| format | rows with ggml's bits | 1 token: tokenloom error | ggml error | 8 tokens: tokenloom error | ggml error |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, table) in &tables {
            check(&args, name, table, &hidden);
        }
        println!();
    }

    // The dense f32 table of the same values: the read rate the quantized ones are held to.
    let dense: Embedding<f32> = tables[0].1.to_dense().unwrap();
    let h1 = TensorView::new(&hidden[..cols], &[1, cols]).unwrap();
    let h8 = TensorView::new(&hidden[..8 * cols], &[8, cols]).unwrap();
    let (batch, seq_len) = (8usize, 512usize);
    let ids: Vec<u32> = (0..(batch * seq_len) as u64)
        .map(|i| ((i * 2_654_435_761) % rows as u64) as u32)
        .collect();
    let lookup_len = batch * seq_len * cols;
    let copy_src = vec![0.5f32; lookup_len];

    let mut contenders = vec![Contender::new("f32 logits 1", |out: &mut [f32]| {
        matmul_into(
            h1,
            Operand::AsIs,
            dense.weight().view(),
            Operand::Transposed,
            TensorViewMut::new(&mut out[..rows], &[1, rows]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap();
    })];
    for (name, table) in &tables {
        contenders.push(Contender::new(
            format!("{name} logits 1"),
            move |out: &mut [f32]| {
                table
                    .logits_into(h1, 1.0, (&mut out[..rows], [1, rows]))
                    .unwrap();
            },
        ));
        contenders.push(Contender::new(
            format!("{name} logits 8"),
            move |out: &mut [f32]| {
                table
                    .logits_into(h8, 1.0, (&mut out[..8 * rows], [8, rows]))
                    .unwrap();
            },
        ));
    }
    if !args.time_only {
        contenders.push(Contender::new("copy roofline", |out: &mut [f32]| {
            let chunk = 1 << 18;
            for_each_chunk_mut(&mut out[..lookup_len], chunk, |i, d| {
                d.copy_from_slice(&black_box(&copy_src)[i * chunk..i * chunk + d.len()]);
            });
        }));
        for (name, table) in &tables {
            let ids = &ids;
            contenders.push(Contender::new(
                format!("{name} lookup"),
                move |out: &mut [f32]| {
                    table
                        .forward_into(
                            (&ids[..], [batch, seq_len]),
                            (&mut out[..lookup_len], [batch, seq_len, cols]),
                        )
                        .unwrap();
                },
            ));
        }
    }
    let mut out = vec![0.0f32; lookup_len.max(8 * rows)];
    let (rounds, sample) = if args.time_only {
        (5, Duration::from_millis(200))
    } else {
        (15, Duration::from_millis(100))
    };
    let timings = time_interleaved(&mut contenders, &mut out, rounds, sample);
    let us = |name: &str| {
        timings
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no timing {name}"))
            .median
            .as_secs_f64()
            * 1e6
    };
    let threads = rayon::current_num_threads();
    if args.time_only {
        for (name, _) in &tables {
            for n in [1, 8] {
                println!(
                    "tokenloom {name} n_tokens={n} threads={threads} us_per_call={:.2}",
                    us(&format!("{name} logits {n}"))
                );
            }
        }
        return;
    }
    let f32_us = us("f32 logits 1");
    let f32_rate = (rows * cols * 4) as f64 / f32_us / 1e3;
    let copy_us = us("copy roofline");
    println!(
        "One interleaved run ({rounds} rounds, medians), {threads} threads, ({rows}, {cols}) tables. The f32 table's one-token logits: {f32_us:.0} µs, {f32_rate:.1} GB/s; the copy roofline of the (8, 512) lookup's f32 output: {copy_us:.0} µs.\n"
    );
    println!(
        "| format | bytes | logits, 1 token | read rate | × f32 read rate | 8 tokens, per token | (8, 512) lookup | × copy roofline |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, table) in &tables {
        let bytes = table.bytes_in_memory();
        let one = us(&format!("{name} logits 1"));
        let rate = bytes as f64 / one / 1e3;
        let eight = us(&format!("{name} logits 8")) / 8.0;
        let lookup = us(&format!("{name} lookup"));
        println!(
            "| {name} | {:.1} MB | {one:.0} µs | {rate:.1} GB/s | {:.2} | {eight:.0} µs | {lookup:.0} µs | {:.2} |",
            bytes as f64 / 1e6,
            rate / f32_rate,
            copy_us / lookup
        );
    }
}
