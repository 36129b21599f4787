/* The scratch pool (csrc/sd_alloc.h): a sequence of requests chosen by the fuzzer's bytes (big
 * buffers, small ones and ones around the size where buffers become mappings of their own;
 * zeroed and not, sparse ones with a part faulted in ahead (sd_big_prefault); resized; freed as
 * they are or zeroed; the pool's limit lowered and raised), the
 * way the core's kernels and refine's NumPy arrays (python/synthdof/_validate.py pooled_arrays)
 * use it. Checks: a zeroed buffer is zero in every byte, whatever the pool handed back before it;
 * a resized buffer keeps its bytes up to the smaller size; buffers alive at once never share a
 * byte (each keeps its own fill to the end); the pool never keeps more than its limit. Each input
 * starts from an empty pool, so a reproducer replays alike. */
#include "fuzz_common.h"
#include "sd_alloc.h"

#define LIVE 6
#define MIB ((size_t)1 << 20)

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char fill;
} live_buf;

#define CHECK(c, ...) \
    do {                  \
        if (!(c)) FZ_FAIL(__VA_ARGS__); \
    } while (0)

static size_t pick_size(fz_in *in)
{
    switch (fz_u8(in) % 4) {
    case 0: return (size_t)fz_range(in, 0, 65535);                                 /* calloc's */
    case 1: return 4 * MIB - 32768 + (size_t)fz_range(in, 0, 65535);               /* either side */
    default: return (size_t)fz_range(in, 4, 24) * MIB + (size_t)fz_range(in, 0, 65535); /* mapped */
    }
}

/* Every byte of [p, p + n) equals v (word by word where aligned). */
static int all_equal(const unsigned char *p, size_t n, unsigned char v)
{
    size_t i = 0, word;
    memset(&word, v, sizeof word);
    for (; i < n && ((uintptr_t)(p + i) % sizeof word); i++)
        if (p[i] != v) return 0;
    for (; i + sizeof word <= n; i += sizeof word)
        if (*(const size_t *)(p + i) != word) return 0;
    for (; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void check_limit(size_t limit)
{
    size_t kept = sd_scratch_kept();
    CHECK(kept <= limit, "the pool keeps %zu bytes over its limit %zu", kept, limit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    static const size_t limits[4] = {0, 8 * MIB, 64 * MIB, 256 * MIB};
    size_t limit = limits[fz_u8(&in) % 4];
    sd_scratch_limit(0); /* an empty pool: the input alone decides what is reused */
    sd_scratch_limit(limit);
    live_buf live[LIVE] = {{0}};
    unsigned next_fill = 0;
    int steps = fz_range(&in, 1, 24);
    for (int s = 0; s < steps && in.n; s++) {
        uint8_t op = fz_u8(&in);
        live_buf *b = &live[(op >> 3) % LIVE];
        int nt = 1 + ((op >> 6) & 1);
        switch (op % 6) {
        case 0: /* undefined content */
        case 1: /* zeroed */
            if (b->p) break;
            b->n = pick_size(&in);
            if (op % 6) { /* zeroed: all at once or sparse, the latter with a part faulted in ahead */
                uint8_t how = fz_u8(&in);
                b->p = how & 1 ? sd_big_calloc_sparse(b->n, 1, nt) : sd_big_calloc(b->n, 1, nt);
                CHECK((how & 1) || !sd_big_unfaulted(b->p), "a zeroed buffer of %zu bytes left to fault in", b->n);
                if (b->p && (how & 2)) { /* any part, past the end too: only what is inside counts */
                    size_t off = (size_t)fz_range(&in, 0, 32 << 20), len = (size_t)fz_range(&in, 0, 32 << 20);
                    sd_big_prefault(b->p, off, len, nt);
                }
            } else
                b->p = sd_big_alloc(b->n, 1, nt);
            CHECK(b->p, "no buffer of %zu bytes", b->n);
            CHECK((uintptr_t)b->p % 16 == 0, "buffer %p not 16-byte aligned", (void *)b->p);
            if (op % 6) CHECK(all_equal(b->p, b->n, 0), "a zeroed buffer of %zu bytes is not zero", b->n);
            b->fill = next_fill++ % 255 + 1; /* never 0: zero must be the pool's doing */
            memset(b->p, b->fill, b->n);
            break;
        case 2: { /* resized (from nothing: a new buffer) */
            size_t n = pick_size(&in);
            unsigned char *q = sd_big_realloc(b->p, n, nt);
            CHECK(q, "no buffer of %zu bytes", n);
            size_t kept = b->p ? (b->n < n ? b->n : n) : 0;
            CHECK(all_equal(q, kept, b->fill), "a resize %zu -> %zu bytes lost the first %zu", b->n, n, kept);
            if (!b->p) b->fill = next_fill++ % 255 + 1;
            memset(q + kept, b->fill, n - kept);
            b->p = q;
            b->n = n;
            break;
        }
        case 3: /* freed as it is */
            sd_big_free(b->p);
            b->p = NULL;
            break;
        case 4: /* freed zeroed: the next zeroed request may skip zeroing it */
            if (b->p) memset(b->p, 0, b->n);
            sd_big_free_zeroed(b->p);
            b->p = NULL;
            break;
        default: { /* the limit changed: what is over it goes at once */
            limit = limits[fz_u8(&in) % 4];
            size_t now = sd_scratch_limit(limit);
            CHECK(now <= limit && now == sd_scratch_kept(), "limit %zu: %zu bytes kept, %zu reported", limit,
                  sd_scratch_kept(), now);
            break;
        }
        }
        check_limit(limit);
        for (int i = 0; i < LIVE; i++) /* no two live buffers share memory: each kept its fill */
            if (live[i].p && live[i].n)
                CHECK(live[i].p[0] == live[i].fill && live[i].p[live[i].n - 1] == live[i].fill &&
                          live[i].p[live[i].n / 2] == live[i].fill,
                      "buffer %d (%zu bytes) was overwritten", i, live[i].n);
    }
    for (int i = 0; i < LIVE; i++) {
        if (live[i].p) CHECK(all_equal(live[i].p, live[i].n, live[i].fill), "buffer %d was overwritten", i);
        sd_big_free(live[i].p);
    }
    check_limit(limit);
    sd_scratch_limit(SD_SCRATCH_DEFAULT);
    return 0;
}
