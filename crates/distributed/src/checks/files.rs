//! Sharded loading, saved shards merged back, and real checkpoints.

use std::path::{Path, PathBuf};

use rand::Rng;
use tokenloom_embedding::{EmbeddingOptions, functional};
use tokenloom_io::{
    GgufFile, GgufWriteTensor, SafetensorsFile, gguf_bytes, quantize_q8_0, write_safetensors,
};

use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::files::merge_shards;

use super::*;

pub(super) fn files<C: Communicator + ?Sized>(
    comm: &C,
    config: &CheckConfig,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let dir = &config.scratch_dir;
    let st_path = dir.join("table.safetensors");
    let gguf_path = dir.join("table.gguf");
    // 64 columns: whole Q8_0 blocks.
    let n_embd = 64;
    let mut rng = rng(14);
    let table: Vec<f32> = (0..VOCAB_SIZE * n_embd)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let written = if comm.rank() == 0 {
        write_files(dir, &st_path, &gguf_path, &table, n_embd)
    } else {
        Ok(())
    };
    crate::agree::agree(comm, "writing the check files", &[], &[], written)?;

    let emb = VocabParallelEmbedding::<f32>::load(
        comm,
        &st_path,
        "embed.weight",
        EmbeddingOptions::default(),
    )?;
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(&table, emb.shard(), n_embd),
        ),
        || "sharded safetensors load: rows differ".into(),
    );
    if comm.size() > 1 {
        // A file only the last rank cannot read: its I/O error there, PeerFailed elsewhere.
        let last = comm.size() - 1;
        let path = if comm.rank() == last {
            dir.join("missing.safetensors")
        } else {
            st_path.clone()
        };
        let got = VocabParallelEmbedding::<f32>::load(
            comm,
            &path,
            "embed.weight",
            EmbeddingOptions::default(),
        );
        let ok = if comm.rank() == last {
            matches!(got, Err(DistributedError::Io(_)))
        } else {
            expect_err(
                got,
                &DistributedError::PeerFailed {
                    rank: last,
                    step: "loading",
                },
            )
        };
        report.check(ok, || {
            "a file only one rank cannot read: not reported on every rank".into()
        });
    }
    let quantized = VocabParallelEmbedding::<f32>::load(
        comm,
        &gguf_path,
        "token_embd.weight",
        EmbeddingOptions::default(),
    )?;
    let full = GgufFile::open(&gguf_path)?.load::<f32>("token_embd.weight")?;
    report.check(
        same_bits(
            quantized.weight().as_slice(),
            shard_rows(full.as_slice(), quantized.shard(), n_embd),
        ),
        || "sharded GGUF (Q8_0) load: rows differ from the full dequantized table".into(),
    );

    // Save shards, merge on rank 0, compare bit for bit.
    let shard_path = |rank: usize| dir.join(format!("shard-{rank}-of-{}.safetensors", comm.size()));
    let saved = emb.save_shard(shard_path(comm.rank()), "embed.weight");
    crate::agree::agree(comm, "saving shards", &[], &[], saved)?;
    if comm.rank() == 0 {
        let merged_path = dir.join("merged.safetensors");
        let shards: Vec<PathBuf> = (0..comm.size()).rev().map(shard_path).collect();
        let merged = merge_shards(&shards, "embed.weight", &merged_path)
            .and_then(|_| Ok(SafetensorsFile::open(&merged_path)?.load::<f32>("embed.weight")?));
        report.check(matches!(&merged, Ok(m) if same_bits(m.as_slice(), &table) && m.dims() == [VOCAB_SIZE, n_embd]), || {
            format!("merged shards differ from the table: {merged:?}")
        });
        if comm.size() > 1 {
            let gap = merge_shards(&shards[1..], "embed.weight", dir.join("gap.safetensors"));
            report.check(
                matches!(gap, Err(DistributedError::ShardsDoNotTile { .. })),
                || "a missing shard was not reported".into(),
            );
        }
    }
    comm.barrier()?;
    Ok(())
}

pub(super) fn write_files(
    dir: &Path,
    st_path: &Path,
    gguf_path: &Path,
    table: &[f32],
    n_embd: usize,
) -> Result<(), DistributedError> {
    std::fs::create_dir_all(dir).map_err(|e| tokenloom_io::IoError::io(dir, e))?;
    let view = tokenloom_tensor::TensorView::new(table, &[VOCAB_SIZE, n_embd])?;
    write_safetensors(st_path, &[("embed.weight", view)])?;
    let gguf = gguf_bytes(
        &[],
        &[GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 8,
            ne: vec![n_embd as u64, VOCAB_SIZE as u64],
            data: quantize_q8_0(table),
        }],
    );
    std::fs::write(gguf_path, gguf).map_err(|e| tokenloom_io::IoError::io(gguf_path, e))?;
    Ok(())
}

pub(super) fn real_table<C: Communicator + ?Sized>(
    comm: &C,
    path: &Path,
    name: &str,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let emb = VocabParallelEmbedding::<f32>::load(comm, path, name, EmbeddingOptions::default())?;
    let shard = emb.shard();
    let n_embd = emb.n_embd();
    // The check alone reads the whole table, to compare.
    let full = if path.extension().is_some_and(|e| e == "gguf") {
        GgufFile::open(path)?.load::<f32>(name)?
    } else {
        SafetensorsFile::open(path)?.load::<f32>(name)?
    };
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(full.as_slice(), shard, n_embd),
        ),
        || {
            format!(
                "{}: shard rows {:?} of {name} differ from the full table",
                path.display(),
                shard.range()
            )
        },
    );
    // A forward pass over ids spread through the real vocabulary.
    let vocab_size = shard.vocab_size();
    let ids: Vec<u32> = (0..64)
        .map(|i| ((i * 7919 + 13) % vocab_size) as u32)
        .collect();
    let got = emb.forward(comm, &ids[..])?;
    let expected = functional::lookup(&full, &ids[..], None)?;
    report.check(same_bits(got.as_slice(), expected.as_slice()), || {
        format!("{}: forward over the real table differs", path.display())
    });
    Ok(())
}
