//! `merge-shards`: vocab-parallel shards joined back bit for bit.

use super::*;

#[test]
fn merge_shards_joins_vocab_parallel_shards_bit_for_bit() {
    use tokenloom_distributed::{ThreadGroup, VocabParallelEmbedding};
    let dir = common::scratch_dir("cli-merge-shards");
    let table = values(10 * 4, 7);
    let shard = |rank: usize| dir.join(format!("shard-{rank}.safetensors"));
    ThreadGroup::run(3, |comm| {
        let emb = VocabParallelEmbedding::from_full(
            &comm,
            (&table[..], [10, 4]),
            tokenloom_embedding::EmbeddingOptions::default(),
        )
        .unwrap();
        emb.save_shard(shard(emb.shard().rank()), "model.embed_tokens.weight")
            .unwrap();
    })
    .unwrap();
    let out = dir.join("merged.safetensors");
    let (s0, s1, s2) = (shard(0), shard(1), shard(2));
    let (s0, s1, s2, o) = (
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        s2.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let report = json(&[
        "merge-shards",
        o,
        s2,
        s0,
        s1,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert_eq!(report["vocab_size"], 10);
    assert_eq!(report["n_embd"], 4);
    assert_eq!(report["shards"], 3);
    let merged = SafetensorsFile::open(&out)
        .unwrap()
        .load::<f32>("model.embed_tokens.weight")
        .unwrap();
    assert_eq!(merged.dims(), &[10, 4]);
    assert!(
        merged
            .as_slice()
            .iter()
            .zip(&table)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );

    let gap = dir.join("gap.safetensors");
    let msg = error(&[
        "merge-shards",
        gap.to_str().unwrap(),
        s0,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(
        msg.contains("do not tile rows 0..10") && msg.contains("starting at row 4"),
        "{msg}"
    );
    let msg = error(&[
        "merge-shards",
        s0,
        s0,
        s1,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("is also one of the shards"), "{msg}");
    // The same file under another spelling (compared as files, not strings).
    let s0_path = std::path::Path::new(s0);
    let dotted = format!(
        "{}/./{}",
        s0_path.parent().unwrap().display(),
        s0_path.file_name().unwrap().to_str().unwrap()
    );
    let msg = error(&[
        "merge-shards",
        &dotted,
        s0,
        s1,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("is also one of the shards"), "{msg}");
    let msg = error(&[
        "merge-shards",
        o,
        o,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("also one of the shards"), "{msg}");
    let not_a_shard = dir.join("plain.safetensors");
    tokenloom_io::write_safetensors(
        &not_a_shard,
        &[("w", TensorView::new(&table[..], &[10, 4]).unwrap())],
    )
    .unwrap();
    let msg = error(&[
        "merge-shards",
        gap.to_str().unwrap(),
        not_a_shard.to_str().unwrap(),
        "--tensor",
        "w",
    ]);
    assert!(
        msg.contains("not a tokenloom shard file") && msg.contains("tokenloom.shard.start"),
        "{msg}"
    );
}
