//! `tokenloom formats`.

use serde_json::{Value, json};
use tokenloom_io::{BlockCodec, GgmlType};

use super::emit;
use crate::error::CliError;

/// The GGUF tensor types tokenloom reads: the plain floats, and every block-quantized
/// format with its block size and bits per value (each decoded bit-exact against gguf-py
/// and usable as a quantized table without dequantizing it).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  tokenloom formats\n  tokenloom formats --json")]
pub struct FormatsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tokenloom formats`.
pub fn run(args: FormatsArgs) -> Result<(), CliError> {
    let plain = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::F64,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
    ];
    let entry = |qtype: GgmlType, quantized: bool| -> Value {
        let (block_elems, block_bytes) = qtype.block_layout().unwrap_or((1, 0));
        #[allow(clippy::cast_precision_loss)] // block sizes are a few hundred
        let bits = (block_bytes * 8) as f64 / block_elems as f64;
        json!({
            "name": qtype.name(),
            "id": qtype.id(),
            "quantized": quantized,
            "block_elems": block_elems,
            "block_bytes": block_bytes,
            "bits_per_value": bits,
        })
    };
    let gguf: Vec<Value> = plain
        .iter()
        .map(|&t| entry(t, false))
        .chain(BlockCodec::formats().iter().map(|&t| entry(t, true)))
        .collect();
    let value = json!({ "gguf": gguf });
    emit(args.json, &value, || {
        let mut text =
            "GGUF tensor types tokenloom reads (id, values and bytes per block, bits per value):\n"
                .to_owned();
        for t in &gguf {
            text += &format!(
                "  {:<7} id {:>2}  {:>3} values / {:>3} bytes  {:>5.2} bits{}\n",
                t["name"].as_str().unwrap_or_default(),
                t["id"].as_u64().unwrap_or_default(),
                t["block_elems"].as_u64().unwrap_or_default(),
                t["block_bytes"].as_u64().unwrap_or_default(),
                t["bits_per_value"].as_f64().unwrap_or_default(),
                if t["quantized"] == true {
                    "  (block-quantized)"
                } else {
                    ""
                }
            );
        }
        text
    });
    Ok(())
}
