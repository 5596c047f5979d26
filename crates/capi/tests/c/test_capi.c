/* The tokenloom C API from C: every kernel on buffers this program owns, and the errors.
 *
 * Build and run (as .ci/run does):
 *   cargo build --release -p tokenloom-capi
 *   PKG_CONFIG_PATH=crates/capi cc -std=c11 -Wall -Wextra -Werror crates/capi/tests/c/test_capi.c \
 *      $(PKG_CONFIG_PATH=crates/capi pkg-config --cflags --libs tokenloom) -o target/test_capi
 *   target/test_capi
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenloom.h"

static int checks = 0;

#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "FAILED at %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                              \
            fprintf(stderr, " (last error: %s)\n", tokenloom_last_error_message()); \
            exit(1);                                                   \
        }                                                              \
        checks++;                                                      \
    } while (0)

/* A descriptor through the library's own helper (it checks the tag and the rank). */
static TokenloomTensor tensor(void *data, TokenloomDtype dtype, size_t rank, const size_t *dims) {
    TokenloomTensor t;
    CHECK(tokenloom_tensor_init(&t, data, dtype, rank, dims) == TOKENLOOM_STATUS_OK, "tensor_init");
    return t;
}

int main(void) {
    /* A (vocab_size 5, n_embd 3) table owned by this program. */
    float table[15];
    for (int i = 0; i < 15; i++) table[i] = (float)i * 0.5f;
    size_t table_dims[2] = {5, 3};
    TokenloomTensor t_table = tensor(table, TOKENLOOM_DTYPE_F32, 2, table_dims);

    /* Lookup with PyTorch-style int64 ids, (batch 1, seq_len 3). */
    int64_t ids[3] = {4, 0, 4};
    size_t ids_dims[2] = {1, 3};
    TokenloomTensor t_ids = tensor(ids, TOKENLOOM_DTYPE_I64, 2, ids_dims);
    float out[9];
    size_t out_dims[3] = {1, 3, 3};
    TokenloomTensor t_out = tensor(out, TOKENLOOM_DTYPE_F32, 3, out_dims);
    CHECK(tokenloom_lookup(&t_table, &t_ids, &t_out) == TOKENLOOM_STATUS_OK, "lookup");
    CHECK(out[0] == 6.0f && out[3] == 0.0f && out[8] == 7.0f, "lookup rows");

    /* A negative id: the typed status and a message naming batch and position. */
    ids[1] = -2;
    CHECK(tokenloom_lookup(&t_table, &t_ids, &t_out) == TOKENLOOM_STATUS_TOKEN_OUT_OF_RANGE, "negative id");
    CHECK(strcmp(tokenloom_last_error_message(),
                 "token id -2 at batch 0, position 1 is outside vocab_size 5") == 0,
          "message: %s", tokenloom_last_error_message());
    ids[1] = 0;

    /* Dense backward into this program's gradient buffer (id 4 twice: rows add up). */
    float grad_output[9];
    for (int i = 0; i < 9; i++) grad_output[i] = 1.0f;
    TokenloomTensor t_go = tensor(grad_output, TOKENLOOM_DTYPE_F32, 3, out_dims);
    float grad_weight[15];
    TokenloomTensor t_gw = tensor(grad_weight, TOKENLOOM_DTYPE_F32, 2, table_dims);
    CHECK(tokenloom_backward_dense(&t_ids, &t_go, &t_gw, false, 0, false, false) == TOKENLOOM_STATUS_OK,
          "backward");
    CHECK(grad_weight[12] == 2.0f && grad_weight[0] == 1.0f && grad_weight[3] == 0.0f, "grad rows");

    /* Row-sparse backward: two distinct rows. */
    uint32_t rows[3];
    size_t rows_dims[1] = {3};
    float values[9];
    size_t values_dims[2] = {3, 3};
    size_t n_rows = 0;
    TokenloomTensor t_rows = tensor(rows, TOKENLOOM_DTYPE_U32, 1, rows_dims);
    TokenloomTensor t_values = tensor(values, TOKENLOOM_DTYPE_F32, 2, values_dims);
    CHECK(tokenloom_backward_sparse(&t_ids, &t_go, 5, false, 0, false, &t_rows, &t_values, &n_rows) ==
              TOKENLOOM_STATUS_OK,
          "sparse backward");
    CHECK(n_rows == 2 && rows[0] == 0 && rows[1] == 4 && values[3] == 2.0f, "sparse rows");

    /* AdamW from the sparse rows, its moments in this program's buffers: only rows 0 and 4
       move, by lr on the first step (the sign of the gradient). */
    float weight[15], m[15] = {0}, v[15] = {0};
    memcpy(weight, table, sizeof weight);
    uint64_t steps = 0;
    TokenloomAdamW adamw = tokenloom_adamw_default(0.1);
    adamw.weight_decay = 0.0;
    size_t used_dims[1] = {2};
    size_t used_values_dims[2] = {2, 3};
    TokenloomTensor t_used_rows = tensor(rows, TOKENLOOM_DTYPE_U32, 1, used_dims);
    TokenloomTensor t_used_values = tensor(values, TOKENLOOM_DTYPE_F32, 2, used_values_dims);
    TokenloomTensor t_weight = tensor(weight, TOKENLOOM_DTYPE_F32, 2, table_dims);
    TokenloomTensor t_m = tensor(m, TOKENLOOM_DTYPE_F32, 2, table_dims);
    TokenloomTensor t_v = tensor(v, TOKENLOOM_DTYPE_F32, 2, table_dims);
    CHECK(tokenloom_adamw_step(&t_weight, &t_used_values, &t_used_rows, &t_m, &t_v, &steps, &adamw, false, 0) ==
              TOKENLOOM_STATUS_OK,
          "adamw step");
    CHECK(steps == 1 && fabsf(weight[0] - (table[0] - 0.1f)) < 1e-6f && weight[3] == table[3] &&
              fabsf(m[12] - 0.2f) < 1e-7f,
          "adamw rows and moments");
    CHECK(tokenloom_adamw_step(&t_weight, &t_used_values, &t_used_rows, &t_m, &t_m, &steps, &adamw, false, 0) ==
              TOKENLOOM_STATUS_ALIASED,
          "m and v may not share memory");

    /* EmbeddingBag: ids [4, 0 | 4] cut at offsets {0, 2}, mean of each bag. */
    int64_t bag_ids[3] = {4, 0, 4};
    int64_t offsets[2] = {0, 2};
    float bag_out[6];
    size_t bag_ids_dims[1] = {3}, offsets_dims[1] = {2}, bag_out_dims[2] = {2, 3};
    TokenloomTensor t_bag_ids = tensor(bag_ids, TOKENLOOM_DTYPE_I64, 1, bag_ids_dims);
    TokenloomTensor t_offsets = tensor(offsets, TOKENLOOM_DTYPE_I64, 1, offsets_dims);
    TokenloomTensor t_bag_out = tensor(bag_out, TOKENLOOM_DTYPE_F32, 2, bag_out_dims);
    CHECK(tokenloom_embedding_bag(&t_table, &t_bag_ids, &t_offsets, false, NULL, TOKENLOOM_BAG_MODE_MEAN, false, 0,
                                  &t_bag_out, NULL) == TOKENLOOM_STATUS_OK,
          "embedding bag");
    CHECK(bag_out[0] == (table[12] + table[0]) / 2 && bag_out[3] == table[12], "bag means");
    CHECK(tokenloom_embedding_bag_backward(&t_bag_ids, &t_offsets, false, NULL, &t_bag_out, NULL, TOKENLOOM_BAG_MODE_MEAN,
                                           false, 0, false, &t_gw, false) == TOKENLOOM_STATUS_OK,
          "embedding bag backward");
    CHECK(grad_weight[12] == bag_out[0] / 2 + bag_out[3] && grad_weight[3] == 0.0f, "bag gradient");

    /* Tied logits over the table: h @ table^T. */
    float hidden[3] = {1.0f, 0.0f, 0.0f};
    size_t hidden_dims[2] = {1, 3};
    float logits[5];
    size_t logits_dims[2] = {1, 5};
    TokenloomTensor t_h = tensor(hidden, TOKENLOOM_DTYPE_F32, 2, hidden_dims);
    TokenloomTensor t_logits = tensor(logits, TOKENLOOM_DTYPE_F32, 2, logits_dims);
    CHECK(tokenloom_logits(&t_h, &t_table, 1.0, &t_logits) == TOKENLOOM_STATUS_OK, "logits");
    CHECK(logits[4] == 6.0f && logits[1] == 1.5f, "logit values");

    /* RoPE: tokenloom's cos/sin of a LLaMA 3.1 config (llama3 scaling) into our buffers,
       then x -> out and in place give the same numbers. */
    const char *config =
        "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"max_position_embeddings\": 131072,"
        " \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
        " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}";
    enum { SEQ = 6, HALF = 8, HEAD = 16, HEADS = 2 };
    float cos_t[SEQ * HALF], sin_t[SEQ * HALF];
    size_t cs_dims[2] = {SEQ, HALF};
    TokenloomTensor t_cos = tensor(cos_t, TOKENLOOM_DTYPE_F32, 2, cs_dims);
    TokenloomTensor t_sin = tensor(sin_t, TOKENLOOM_DTYPE_F32, 2, cs_dims);
    CHECK(tokenloom_rope_cos_sin_hf(config, 131072, 0, &t_cos, &t_sin) == TOKENLOOM_STATUS_OK, "cos/sin");
    CHECK(cos_t[0] == 1.0f && sin_t[0] == 0.0f && fabsf(cos_t[HALF] - cosf(1.0f)) < 1e-6f, "cos/sin values");
    float x[SEQ * HEADS * HEAD], rotated[SEQ * HEADS * HEAD];
    for (int i = 0; i < SEQ * HEADS * HEAD; i++) x[i] = (float)((i * 7) % 11) - 5.0f;
    size_t x_dims[4] = {1, SEQ, HEADS, HEAD};
    TokenloomTensor t_x = tensor(x, TOKENLOOM_DTYPE_F32, 4, x_dims);
    TokenloomTensor t_rot = tensor(rotated, TOKENLOOM_DTYPE_F32, 4, x_dims);
    CHECK(tokenloom_rope(&t_x, &t_rot, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 0, NULL) ==
              TOKENLOOM_STATUS_OK,
          "rope out of place");
    CHECK(tokenloom_rope(&t_x, NULL, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 0, NULL) ==
              TOKENLOOM_STATUS_OK,
          "rope in place");
    CHECK(memcmp(x, rotated, sizeof x) == 0, "in place == out of place");
    /* PyTorch-style int64 position ids 0..5 rotate as the offset 0 did; a negative id is
       an out-of-range status. */
    int64_t pos[SEQ] = {0, 1, 2, 3, 4, 5};
    size_t pos_dims[2] = {1, SEQ};
    TokenloomTensor t_pos = tensor(pos, TOKENLOOM_DTYPE_I64, 2, pos_dims);
    for (int i = 0; i < SEQ * HEADS * HEAD; i++) x[i] = (float)((i * 7) % 11) - 5.0f;
    float by_ids[SEQ * HEADS * HEAD];
    TokenloomTensor t_by_ids = tensor(by_ids, TOKENLOOM_DTYPE_F32, 4, x_dims);
    CHECK(tokenloom_rope(&t_x, &t_by_ids, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 0, &t_pos) ==
              TOKENLOOM_STATUS_OK && memcmp(by_ids, rotated, sizeof by_ids) == 0,
          "rope with int64 position ids");
    pos[2] = -1;
    CHECK(tokenloom_rope(&t_x, &t_by_ids, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 0, &t_pos) ==
              TOKENLOOM_STATUS_POSITION_OUT_OF_RANGE,
          "negative position id");
    CHECK(tokenloom_rope(&t_x, NULL, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 0, NULL) ==
              TOKENLOOM_STATUS_OK,
          "rope in place again");
    CHECK(tokenloom_rope(&t_x, NULL, &t_cos, &t_sin, TOKENLOOM_ROPE_LAYOUT_HALF_SPLIT,
                         TOKENLOOM_QK_LAYOUT_BATCH_SEQ_HEADS, TOKENLOOM_DIRECTION_FORWARD, 1.0, 1, NULL) ==
              TOKENLOOM_STATUS_POSITION_OUT_OF_RANGE,
          "positions past the tables");

    /* Sinusoidal rows into our buffer. */
    double pe[2 * 4];
    size_t pe_dims[2] = {2, 4};
    TokenloomTensor t_pe = tensor(pe, TOKENLOOM_DTYPE_F64, 2, pe_dims);
    CHECK(tokenloom_sinusoidal(&t_pe, 10000.0, 1) == TOKENLOOM_STATUS_OK, "sinusoidal");
    CHECK(pe[0] == sin(1.0) && pe[1] == cos(1.0), "sinusoidal values");

    /* Pointer errors are statuses, never crashes. */
    CHECK(tokenloom_lookup(NULL, &t_ids, &t_out) == TOKENLOOM_STATUS_NULL_POINTER, "null descriptor");
    TokenloomTensor misaligned = tensor((char *)table + 1, TOKENLOOM_DTYPE_F32, 2, table_dims);
    CHECK(tokenloom_lookup(&misaligned, &t_ids, &t_out) == TOKENLOOM_STATUS_MISALIGNED, "misaligned");
    TokenloomTensor aliased = tensor(table, TOKENLOOM_DTYPE_F32, 3, out_dims);
    CHECK(tokenloom_lookup(&t_table, &t_ids, &aliased) == TOKENLOOM_STATUS_ALIASED, "aliased output");
    TokenloomTensor bad_tag = t_ids;
    bad_tag.dtype = 42;
    CHECK(tokenloom_lookup(&t_table, &bad_tag, &t_out) == TOKENLOOM_STATUS_BAD_DTYPE, "unknown dtype");

    /* The version, and the same lookup on one thread and on a pool of three. */
    CHECK(strlen(tokenloom_version()) >= 5 && tokenloom_version()[1] == '.', "version %s", tokenloom_version());
    ids[1] = 0;
    for (size_t n = 1; n <= 3; n += 2) {
        CHECK(tokenloom_set_num_threads(n) == TOKENLOOM_STATUS_OK && tokenloom_num_threads() == n, "threads");
        CHECK(tokenloom_lookup(&t_table, &t_ids, &t_out) == TOKENLOOM_STATUS_OK && out[8] == 7.0f, "lookup on %zu threads", n);
    }
    CHECK(tokenloom_set_num_threads_pinned(2) == TOKENLOOM_STATUS_OK && tokenloom_num_threads() == 2, "pinned threads");
    CHECK(tokenloom_lookup(&t_table, &t_ids, &t_out) == TOKENLOOM_STATUS_OK && out[8] == 7.0f, "lookup on 2 pinned threads");
    CHECK(tokenloom_spread_threads() == 1, "spreading is on by default");
    CHECK(tokenloom_set_spread_threads(2) == TOKENLOOM_STATUS_INVALID_ARGUMENT && tokenloom_spread_threads() == 1, "spread 2");
    CHECK(tokenloom_set_spread_threads(0) == TOKENLOOM_STATUS_OK && tokenloom_spread_threads() == 0, "spread off");
    CHECK(tokenloom_lookup(&t_table, &t_ids, &t_out) == TOKENLOOM_STATUS_OK && out[8] == 7.0f, "lookup with spreading off");
    CHECK(tokenloom_set_spread_threads(1) == TOKENLOOM_STATUS_OK && tokenloom_spread_threads() == 1, "spread on");
    CHECK(tokenloom_set_num_threads(TOKENLOOM_MAX_THREADS + 1) == TOKENLOOM_STATUS_INVALID_ARGUMENT, "too many threads");
    CHECK(tokenloom_set_num_threads(0) == TOKENLOOM_STATUS_OK, "default threads");
    TokenloomTensor unused;
    CHECK(tokenloom_tensor_init(&unused, table, 42, 2, table_dims) == TOKENLOOM_STATUS_BAD_DTYPE, "init with a bad tag");

    printf("c api: %d checks passed\n", checks);
    return 0;
}
