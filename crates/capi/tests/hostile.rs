//! C API regression tests of "Hostile inputs, round two": sizes that aborted the process
//! and tables of an undocumented dtype that were filled anyway.

use tokenloom_capi::{
    TOKENLOOM_MAX_RANK, TokenloomDtype, TokenloomStatus, TokenloomTensor, tokenloom_rope_cos_sin,
    tokenloom_rope_cos_sin_hf,
};

fn table<T>(buf: &mut [T], dtype: TokenloomDtype, rows: usize, cols: usize) -> TokenloomTensor {
    let mut dims = [0usize; TOKENLOOM_MAX_RANK];
    dims[0] = rows;
    dims[1] = cols;
    TokenloomTensor {
        data: buf.as_mut_ptr().cast(),
        dtype: dtype as i32,
        rank: 2,
        dims,
    }
}

/// `head_dim` 2^40 with (2, 4) tables killed the calling process (an allocation of
/// 4 TB); 2^30 took 20 s and 4.2 GB before its BAD_SHAPE. Now an immediate BAD_SHAPE.
#[test]
fn a_huge_head_dim_with_small_tables_is_bad_shape_at_once() {
    let (mut cos, mut sin) = ([0f32; 8], [0f32; 8]);
    for head_dim in [1usize << 30, 1 << 40, 1 << 62] {
        let (c, s) = (
            table(&mut cos, TokenloomDtype::F32, 2, 4),
            table(&mut sin, TokenloomDtype::F32, 2, 4),
        );
        let started = std::time::Instant::now();
        // SAFETY: both descriptors describe live, disjoint (2, 4) f32 buffers.
        let status = unsafe { tokenloom_rope_cos_sin(head_dim, head_dim, 10000.0, 0, &c, &s) };
        assert_eq!(status, TokenloomStatus::BadShape, "{head_dim}");
        assert!(started.elapsed().as_secs() < 2, "{head_dim}");
    }
    let config = c"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_attention_heads\": 2, \"head_dim\": 1099511627776, \"max_position_embeddings\": 16}";
    let (c, s) = (
        table(&mut cos, TokenloomDtype::F32, 2, 4),
        table(&mut sin, TokenloomDtype::F32, 2, 4),
    );
    // SAFETY: as above; the config is NUL-terminated.
    let status = unsafe { tokenloom_rope_cos_sin_hf(config.as_ptr(), 2, 0, &c, &s) };
    assert_eq!(status, TokenloomStatus::BadShape);
}

/// f16/bf16 tables, documented as f32/f64 (the dtypes tokenloom_rope rotates with), were
/// filled with status OK.
#[test]
fn half_precision_tables_are_a_dtype_error() {
    let (mut cos, mut sin) = ([0u16; 8], [0u16; 8]);
    for dtype in [TokenloomDtype::F16, TokenloomDtype::Bf16] {
        let (c, s) = (table(&mut cos, dtype, 2, 4), table(&mut sin, dtype, 2, 4));
        // SAFETY: both descriptors describe live, disjoint (2, 4) buffers of 2-byte values.
        let status = unsafe { tokenloom_rope_cos_sin(8, 8, 10000.0, 0, &c, &s) };
        assert_eq!(status, TokenloomStatus::BadDtype, "{dtype:?}");
    }
}
