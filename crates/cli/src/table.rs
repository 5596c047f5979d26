//! The embedding table a command reads: dense (`f32` in memory) or quantized (the GGUF
//! blocks as mapped, rows decoded one at a time — never a dense copy).

use tokenloom_embedding::{QuantizedEmbedding, functional};
use tokenloom_tensor::Tensor;

use crate::error::CliError;

/// A `(vocab_size, n_embd)` table, as the checkpoint stores it.
pub enum Table {
    /// A float table, read into `f32` (possibly with no rows: `inspect` reports those).
    Dense(Tensor<f32>),
    /// A block-quantized GGUF table, kept as stored.
    Quantized(QuantizedEmbedding),
}

impl Table {
    /// The number of rows.
    pub fn vocab_size(&self) -> usize {
        match self {
            Table::Dense(t) => t.dims()[0],
            Table::Quantized(t) => t.vocab_size(),
        }
    }

    /// The width of a row.
    pub fn n_embd(&self) -> usize {
        match self {
            Table::Dense(t) => t.dims()[1],
            Table::Quantized(t) => t.n_embd(),
        }
    }

    /// The bytes the table takes in memory: `4 · vocab_size · n_embd` dense, the stored
    /// blocks quantized.
    pub fn bytes_in_memory(&self) -> usize {
        match self {
            Table::Dense(t) => std::mem::size_of_val(t.as_slice()),
            Table::Quantized(t) => t.bytes_in_memory(),
        }
    }

    /// The rows of `ids`, `(1, ids.len(), n_embd)`.
    pub fn lookup(&self, ids: &[u32]) -> Result<Tensor<f32>, CliError> {
        let ids = Tensor::from_vec(ids.to_vec(), &[1, ids.len()])?;
        Ok(match self {
            Table::Dense(t) => functional::lookup(t, &ids, None)?,
            Table::Quantized(t) => t.forward(&ids)?,
        })
    }

    /// Calls `f(index, row)` for every row in order; a quantized row is decoded into one
    /// reused buffer.
    pub fn for_each_row(&self, mut f: impl FnMut(usize, &[f32])) -> Result<(), CliError> {
        match self {
            Table::Dense(t) => t.rows().enumerate().for_each(|(i, row)| f(i, row)),
            Table::Quantized(t) => {
                let mut row = vec![0.0f32; t.n_embd()];
                for i in 0..t.vocab_size() {
                    t.row_into(i, &mut row)?;
                    f(i, &row);
                }
            }
        }
        Ok(())
    }
}
