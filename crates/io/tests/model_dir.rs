//! Model-directory resolution: hostile sharded indexes and symlinks never open a file
//! outside the directory.

use std::path::{Path, PathBuf};

use tokenloom_io::{IoError, ModelDir, WeightFiles, write_safetensors};
use tokenloom_tensor::Tensor;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tokenloom-model-dir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_table(path: &Path) {
    let table = Tensor::from_vec(vec![1.0f32; 6], &[3, 2]).unwrap();
    write_safetensors(path, &[("model.embed_tokens.weight", table.view())]).unwrap();
}

fn write_index(dir: &Path, entry: &str) {
    let json = serde_json::json!({ "weight_map": { "model.embed_tokens.weight": entry } });
    std::fs::write(dir.join("model.safetensors.index.json"), json.to_string()).unwrap();
}

#[test]
fn hostile_index_entries_are_refused_before_any_file_is_opened() {
    let outside = scratch("outside");
    write_table(&outside.join("secret.safetensors"));
    let dir = scratch("hostile");
    let absolute = outside.join("secret.safetensors").display().to_string();
    let cases: [(&str, &str); 8] = [
        ("../outside/secret.safetensors", "path separator"),
        ("..", "names a directory"),
        (".", "names a directory"),
        (&absolute, "path separator"),
        ("shard\\..\\..\\secret.safetensors", "path separator"),
        ("", "empty"),
        ("model\0.safetensors", "NUL"),
        ("/etc/passwd", "path separator"),
    ];
    for (entry, why) in cases {
        write_index(&dir, entry);
        match ModelDir::open(&dir) {
            Err(IoError::UnsafeIndexEntry {
                entry: got,
                reason,
                tensor,
                ..
            }) => {
                assert_eq!(got, entry);
                assert_eq!(tensor, "model.embed_tokens.weight");
                assert!(reason.contains(why), "{entry:?}: {reason}");
            }
            other => panic!("{entry:?} was not refused: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_directory_are_refused() {
    let outside = scratch("symlink-target");
    write_table(&outside.join("secret.safetensors"));
    let dir = scratch("symlink");
    std::os::unix::fs::symlink(
        outside.join("secret.safetensors"),
        dir.join("shard-1.safetensors"),
    )
    .unwrap();
    // Through an index …
    write_index(&dir, "shard-1.safetensors");
    let err = ModelDir::open(&dir).unwrap_err();
    assert!(
        matches!(&err, IoError::EntryOutsideDirectory { path, .. } if path.ends_with("shard-1.safetensors")),
        "{err}"
    );
    // … as loose shards …
    std::fs::remove_file(dir.join("model.safetensors.index.json")).unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::EntryOutsideDirectory { .. })
    ));
    // … and as the single file or config.
    std::fs::remove_file(dir.join("shard-1.safetensors")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("secret.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::EntryOutsideDirectory { .. })
    ));
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    write_table(&dir.join("model.safetensors"));
    std::os::unix::fs::symlink(outside.join("secret.safetensors"), dir.join("config.json"))
        .unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::EntryOutsideDirectory { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[cfg(unix)]
#[test]
fn a_hub_cache_snapshot_may_point_into_its_blobs() {
    let repo = scratch("hub-cache");
    let blobs = repo.join("blobs");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    write_table(&blobs.join("e3b0c442"));
    std::os::unix::fs::symlink("../../blobs/e3b0c442", snapshot.join("model.safetensors")).unwrap();
    let resolved = ModelDir::open(&snapshot).unwrap();
    assert_eq!(
        resolved.weights(),
        &WeightFiles::Safetensors {
            files: vec![snapshot.join("model.safetensors")],
            weight_map: None
        }
    );
    // A symlink from the snapshot anywhere else is still refused.
    std::fs::write(repo.join("elsewhere.json"), "{}").unwrap();
    std::os::unix::fs::symlink("../../elsewhere.json", snapshot.join("config.json")).unwrap();
    assert!(matches!(
        ModelDir::open(&snapshot),
        Err(IoError::EntryOutsideDirectory { .. })
    ));
    std::fs::remove_dir_all(&repo).unwrap();
}

#[test]
fn resolution_order_and_plain_shards() {
    let dir = scratch("order");
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::NoWeights { gguf_files: 0, .. })
    ));
    std::fs::write(dir.join("a.gguf"), b"GGUF").unwrap();
    assert_eq!(
        ModelDir::open(&dir).unwrap().weights(),
        &WeightFiles::Gguf(dir.join("a.gguf"))
    );
    std::fs::write(dir.join("b.gguf"), b"GGUF").unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::NoWeights { gguf_files: 2, .. })
    ));
    write_table(&dir.join("model-00001-of-00002.safetensors"));
    write_table(&dir.join("model-00002-of-00002.safetensors"));
    let json = serde_json::json!({ "weight_map": {
        "a": "model-00001-of-00002.safetensors",
        "b": "model-00002-of-00002.safetensors",
        "c": "model-00001-of-00002.safetensors",
    }});
    std::fs::write(dir.join("model.safetensors.index.json"), json.to_string()).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let resolved = ModelDir::open(&dir).unwrap();
    let WeightFiles::Safetensors { files, weight_map } = resolved.weights() else {
        panic!("{resolved:?}");
    };
    assert_eq!(files.len(), 2);
    assert_eq!(
        weight_map.as_ref().unwrap()["b"],
        dir.join("model-00002-of-00002.safetensors")
    );
    assert_eq!(
        resolved.config_json(),
        Some(dir.join("config.json").as_path())
    );
    assert_eq!(resolved.params_json(), None);
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        "{\"weight_map\": 3}",
    )
    .unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::IndexNoWeightMap { .. })
    ));
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        "{\"weight_map\": {\"w\": 7}}",
    )
    .unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::IndexEntryNotString { tensor, entry, .. }) if tensor == "w" && entry == "7"
    ));
    std::fs::write(dir.join("model.safetensors.index.json"), "{\n  oops").unwrap();
    assert!(matches!(
        ModelDir::open(&dir),
        Err(IoError::IndexNotJson { line: 2, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
