// ggml's CPU backend as a peer of tokenloom's quantized decode logits (issue 30).
//
// Built by crates/devtools/scripts/ggml_peer.sh from the llama.cpp tree pinned there.
//
//   ggml_peer write <type> <rows> <cols> <dir>
//       quantizes a deterministic (rows, cols) table with ggml's own quantizer and writes
//       <dir>/<type>.table (the raw blocks, row after row), <dir>/<type>.decoded.f32 (ggml's
//       own decoding of the first 64 rows; formats that need an importance matrix get a
//       uniform one) and <dir>/hidden.f32 (8 hidden states of `cols` values), then ggml's logits of the first 1 and 8 hidden states:
//       <dir>/<type>.ggml1.f32 (rows values) and <dir>/<type>.ggml8.f32 (8 · rows values,
//       token after token).
//   ggml_peer time <type> <rows> <cols> <dir> <n_tokens> <threads> <seconds>
//       times `ggml_mul_mat(table, hidden)` of the written table and the first n_tokens
//       hidden states on <threads> threads for about <seconds> s; prints one line
//       `ggml <type> n_tokens=<n> threads=<t> us_per_call=<median of the samples> min_us=<fastest>`.
//
// The table values are a fixed function of the position, so every run quantizes the same
// table; the timed graph is the `ggml_mul_mat` llama.cpp runs for the output head.
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml.h"
#include "ggml-cpu.h"

#define MAX_TOKENS 8
#define DECODED_ROWS 64

static void die(const char *what) {
    fprintf(stderr, "ggml_peer: %s\n", what);
    exit(2);
}

static enum ggml_type type_of(const char *name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *n = ggml_type_name((enum ggml_type)t);
        if (n != NULL && strcmp(n, name) == 0) return (enum ggml_type)t;
    }
    die("unknown ggml type name (use ggml's names: q8_0, q4_K, q6_K, iq4_xs, mxfp4, ...)");
    return GGML_TYPE_COUNT;
}

// A value in [-1, 1) from a 64-bit LCG state.
static float next_value(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void path(char *out, size_t cap, const char *dir, const char *type, const char *suffix) {
    if ((size_t)snprintf(out, cap, "%s/%s%s", dir, type, suffix) >= cap) die("path too long");
}

static void write_file(const char *p, const void *data, size_t bytes) {
    FILE *f = fopen(p, "wb");
    if (f == NULL || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) die(p);
}

static void read_file(const char *p, void *data, size_t bytes) {
    FILE *f = fopen(p, "rb");
    if (f == NULL || fread(data, 1, bytes, f) != bytes) die(p);
    fclose(f);
}

struct peer {
    struct ggml_context *ctx;
    struct ggml_tensor *table, *hidden, *logits;
    struct ggml_cgraph *graph;
};

static struct peer build(enum ggml_type type, int64_t rows, int64_t cols, int64_t n_tokens) {
    size_t bytes = ggml_row_size(type, cols) * (size_t)rows + (size_t)(cols + rows) * MAX_TOKENS * 4 +
                   ggml_graph_overhead() + 16 * ggml_tensor_overhead() + (256u << 20);  // + the work buffer
    struct ggml_init_params params = {bytes, NULL, false};
    struct peer p;
    p.ctx = ggml_init(params);
    if (p.ctx == NULL) die("ggml_init failed");
    p.table = ggml_new_tensor_2d(p.ctx, type, cols, rows);
    p.hidden = ggml_new_tensor_2d(p.ctx, GGML_TYPE_F32, cols, n_tokens);
    p.logits = ggml_mul_mat(p.ctx, p.table, p.hidden);
    p.graph = ggml_new_graph(p.ctx);
    ggml_build_forward_expand(p.graph, p.logits);
    return p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 6) die("usage: ggml_peer write|time <type> <rows> <cols> <dir> [n_tokens threads seconds]");
    const char *mode = argv[1], *name = argv[2], *dir = argv[5];
    enum ggml_type type = type_of(name);
    int64_t rows = atoll(argv[3]), cols = atoll(argv[4]);
    if (rows <= 0 || cols <= 0 || cols % ggml_blck_size(type) != 0) die("bad rows or cols");
    size_t table_bytes = ggml_row_size(type, cols) * (size_t)rows;
    char file[4096];

    if (strcmp(mode, "write") == 0) {
        // The formats that need an importance matrix get a uniform one.
        float *imatrix = malloc((size_t)cols * sizeof(float));
        float *values = malloc((size_t)(rows * cols) * sizeof(float));
        float *hidden = malloc((size_t)(cols * MAX_TOKENS) * sizeof(float));
        if (values == NULL || hidden == NULL || imatrix == NULL) die("out of memory");
        for (int64_t i = 0; i < cols; i++) imatrix[i] = 1.0f;
        uint64_t state = 0x2545F4914F6CDD1Dull;
        for (int64_t i = 0; i < rows * cols; i++) values[i] = 0.05f * next_value(&state);
        for (int64_t i = 0; i < cols * MAX_TOKENS; i++) hidden[i] = next_value(&state);
        void *blocks = malloc(table_bytes);
        if (blocks == NULL) die("out of memory");
        ggml_quantize_chunk(type, values, blocks, 0, rows, cols,
                            ggml_quantize_requires_imatrix(type) ? imatrix : NULL);
        for (int n_tokens = 1; n_tokens <= MAX_TOKENS; n_tokens += MAX_TOKENS - 1) {
            struct peer p = build(type, rows, cols, n_tokens);
            memcpy(p.table->data, blocks, table_bytes);
            memcpy(p.hidden->data, hidden, (size_t)(cols * n_tokens) * sizeof(float));
            if (ggml_graph_compute_with_ctx(p.ctx, p.graph, 1) != GGML_STATUS_SUCCESS) die("compute failed");
            if (n_tokens == 1) {
                path(file, sizeof file, dir, name, ".table");
                write_file(file, p.table->data, table_bytes);
                path(file, sizeof file, dir, "hidden", ".f32");
                write_file(file, hidden, (size_t)(cols * MAX_TOKENS) * sizeof(float));
                // ggml's own decoding of the first DECODED_ROWS rows.
                int64_t decoded = rows < DECODED_ROWS ? rows : DECODED_ROWS;
                float *deq = malloc((size_t)(decoded * cols) * sizeof(float));
                if (deq == NULL) die("out of memory");
                ggml_get_type_traits(type)->to_float(p.table->data, deq, decoded * cols);
                path(file, sizeof file, dir, name, ".decoded.f32");
                write_file(file, deq, (size_t)(decoded * cols) * sizeof(float));
                free(deq);
            }
            path(file, sizeof file, dir, name, n_tokens == 1 ? ".ggml1.f32" : ".ggml8.f32");
            write_file(file, p.logits->data, (size_t)(rows * n_tokens) * sizeof(float));
            ggml_free(p.ctx);
        }
        free(values);
        free(hidden);
        free(imatrix);
        free(blocks);
        return 0;
    }
    if (strcmp(mode, "time") != 0 || argc < 9) die("usage: ggml_peer time <type> <rows> <cols> <dir> <n_tokens> <threads> <seconds>");
    int n_tokens = atoi(argv[6]), threads = atoi(argv[7]);
    double seconds = atof(argv[8]);
    if (n_tokens < 1 || n_tokens > MAX_TOKENS || threads < 1 || !(seconds > 0)) die("bad n_tokens, threads or seconds");
    struct peer p = build(type, rows, cols, n_tokens);
    path(file, sizeof file, dir, name, ".table");
    read_file(file, p.table->data, table_bytes);
    path(file, sizeof file, dir, "hidden", ".f32");
    read_file(file, p.hidden->data, (size_t)(cols * n_tokens) * sizeof(float));
    // Warm up, then samples of about 20 ms each.
    double start = now();
    if (ggml_graph_compute_with_ctx(p.ctx, p.graph, threads) != GGML_STATUS_SUCCESS) die("compute failed");
    double one = now() - start;
    int calls = (int)(0.02 / (one > 1e-6 ? one : 1e-6)) + 1;
    int samples = (int)(seconds / (one * calls)) + 1;
    if (samples > 4096) samples = 4096;
    double *per_call = malloc((size_t)samples * sizeof(double));
    if (per_call == NULL) die("out of memory");
    for (int s = 0; s < samples; s++) {
        start = now();
        for (int c = 0; c < calls; c++) {
            if (ggml_graph_compute_with_ctx(p.ctx, p.graph, threads) != GGML_STATUS_SUCCESS) die("compute failed");
        }
        per_call[s] = (now() - start) / calls;
    }
    qsort(per_call, (size_t)samples, sizeof(double), cmp_double);
    double median = per_call[samples / 2];
    printf("ggml %s n_tokens=%d threads=%d us_per_call=%.2f min_us=%.2f\n", name, n_tokens, threads,
           median * 1e6, per_call[0] * 1e6);
    free(per_call);
    ggml_free(p.ctx);
    return 0;
}
