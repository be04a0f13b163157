/*
 * The heap allocator over [boot->heap_start, boot->heap_end).
 *
 * Every chunk starts with a 16-byte header: the previous chunk's size (valid
 * while that chunk is free) and this chunk's size with two flag bits. Free
 * chunks sit in segregated lists and are merged with free neighbours at once,
 * so a guest that allocates and frees in a loop reuses memory instead of
 * creeping towards the end of the heap. The untouched rest of the heap, the
 * top chunk, is carved only when no list has a fit.
 *
 * The allocator's state persists across calls in one VM, as do the Swift
 * globals that may point into the heap. Exhaustion never returns NULL:
 * Embedded Swift would trap on it, and the host must see out_of_memory, not
 * a crash.
 */
#include "hl_guest.h"
#include "internal.h"

#define BOOT ((const struct hl_boot_info *)(uintptr_t)HL_BOOT_INFO_ADDR)

#define HEADER ((size_t)16)
#define MIN_CHUNK ((size_t)32)
#define IN_USE ((size_t)1)
#define PREV_IN_USE ((size_t)2)
#define FLAGS ((size_t)15)

/* Below SMALL_LIMIT there is one list per 16-byte size, so any chunk in a
 * list fits every request of that list; above it, one list per power of
 * two. */
#define SMALL_LIMIT ((size_t)1024)
#define SMALL_BINS 64u
#define BINS 128u

#define EINVAL 22

struct chunk {
    size_t prev_size;
    size_t head;
    struct chunk *next;
    struct chunk *prev;
};

static struct {
    int ready;
    uintptr_t start;
    uintptr_t end;
    struct chunk *top;
    struct chunk *bins[BINS];
    uint64_t nonempty[BINS / 64];
} heap;

static size_t chunk_size(const struct chunk *c)
{
    return c->head & ~FLAGS;
}

static struct chunk *chunk_at(uintptr_t address)
{
    return (struct chunk *)address;
}

static struct chunk *next_chunk(const struct chunk *c)
{
    return chunk_at((uintptr_t)c + chunk_size(c));
}

static void *payload(struct chunk *c)
{
    return (uint8_t *)c + HEADER;
}

static unsigned bin_of(size_t size)
{
    if (size < SMALL_LIMIT)
        return (unsigned)(size / 16);
    unsigned log2 = 63u - (unsigned)__builtin_clzll(size);
    return SMALL_BINS + (log2 - 10u);
}

static void insert(struct chunk *c)
{
    unsigned b = bin_of(chunk_size(c));
    c->prev = NULL;
    c->next = heap.bins[b];
    if (c->next)
        c->next->prev = c;
    heap.bins[b] = c;
    heap.nonempty[b / 64] |= 1ull << (b % 64);
}

static void unlink_chunk(struct chunk *c)
{
    unsigned b = bin_of(chunk_size(c));
    if (c->prev)
        c->prev->next = c->next;
    else
        heap.bins[b] = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!heap.bins[b])
        heap.nonempty[b / 64] &= ~(1ull << (b % 64));
}

static void init(void)
{
    const struct hl_boot_info *boot = BOOT;
    uintptr_t start = (boot->heap_start + 15) & ~(uintptr_t)15;
    uintptr_t end = boot->heap_end & ~(uintptr_t)15;
    heap.ready = 1;
    if (end < start || end - start < 2 * MIN_CHUNK)
        return;
    heap.start = start;
    heap.end = end;
    heap.top = chunk_at(start);
    heap.top->prev_size = 0;
    heap.top->head = (end - start) | PREV_IN_USE;
}

/* Returns c, whose neighbours are in use or the top, to the heap, merging it
 * with free neighbours. Free chunks are never adjacent to each other or to
 * the top. */
static void release(struct chunk *c)
{
    size_t size = chunk_size(c);
    struct chunk *next = next_chunk(c);
    if (!(c->head & PREV_IN_USE)) {
        struct chunk *before = chunk_at((uintptr_t)c - c->prev_size);
        unlink_chunk(before);
        size += chunk_size(before);
        c = before;
    }
    if (next == heap.top) {
        c->head = (size + chunk_size(next)) | PREV_IN_USE;
        heap.top = c;
        return;
    }
    if (!(next->head & IN_USE)) {
        unlink_chunk(next);
        size += chunk_size(next);
    }
    c->head = size | PREV_IN_USE;
    struct chunk *after = chunk_at((uintptr_t)c + size);
    after->prev_size = size;
    after->head &= ~PREV_IN_USE;
    insert(c);
}

/* Shrinks in-use chunk c to need bytes, giving the rest back if it can hold
 * a chunk of its own. */
static void trim(struct chunk *c, size_t need)
{
    size_t size = chunk_size(c);
    if (size - need < MIN_CHUNK)
        return;
    c->head = need | (c->head & FLAGS);
    struct chunk *rest = next_chunk(c);
    rest->head = (size - need) | IN_USE | PREV_IN_USE;
    release(rest);
}

static struct chunk *take_free(size_t need)
{
    unsigned b = bin_of(need);
    if (b >= SMALL_BINS) {
        /* The request's own power-of-two list also holds smaller chunks. */
        for (struct chunk *c = heap.bins[b]; c; c = c->next) {
            if (chunk_size(c) >= need) {
                unlink_chunk(c);
                return c;
            }
        }
        b++;
    }
    for (unsigned word = b / 64; word < BINS / 64; word++) {
        uint64_t bits = heap.nonempty[word];
        if (word == b / 64)
            bits &= ~0ull << (b % 64);
        if (bits) {
            struct chunk *c = heap.bins[word * 64 + (unsigned)__builtin_ctzll(bits)];
            unlink_chunk(c);
            return c;
        }
    }
    return NULL;
}

/* The top always keeps room for its own header. */
static struct chunk *take_top(size_t need)
{
    if (!heap.top)
        return NULL;
    size_t available = chunk_size(heap.top);
    if (available < need + HEADER)
        return NULL;
    struct chunk *c = heap.top;
    c->head = need | IN_USE | (c->head & PREV_IN_USE);
    heap.top = next_chunk(c);
    heap.top->head = (available - need) | PREV_IN_USE;
    return c;
}

static size_t chunk_need(size_t bytes)
{
    size_t need = (bytes + HEADER + 15) & ~(size_t)15;
    return need < MIN_CHUNK ? MIN_CHUNK : need;
}

/* A chunk with room for bytes + extra; reports bytes when the heap cannot
 * provide it. */
static struct chunk *allocate_chunk(size_t bytes, size_t extra)
{
    if (!heap.ready)
        init();
    if (bytes > heap.end - heap.start || extra > heap.end - heap.start)
        hl_out_of_memory(bytes);
    size_t need = chunk_need(bytes + extra);
    struct chunk *c = take_free(need);
    if (c) {
        c->head |= IN_USE;
        next_chunk(c)->head |= PREV_IN_USE;
        trim(c, need);
        return c;
    }
    c = take_top(need);
    if (!c)
        hl_out_of_memory(bytes);
    return c;
}

/* Heap corruption or a bad pointer is a guest bug: crash, as a hosted C
 * library would abort. */
static struct chunk *owned_chunk(void *pointer)
{
    uintptr_t p = (uintptr_t)pointer;
    if (!heap.ready || p % 16 != 0 || p < heap.start + HEADER || p >= heap.end)
        hl_crash();
    struct chunk *c = chunk_at(p - HEADER);
    size_t size = chunk_size(c);
    if (!(c->head & IN_USE) || size < MIN_CHUNK || size > heap.end - (uintptr_t)c)
        hl_crash();
    return c;
}

void *malloc(size_t size)
{
    return payload(allocate_chunk(size, 0));
}

int posix_memalign(void **result, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    if (alignment <= HEADER) {
        *result = malloc(size);
        return 0;
    }
    /* Over-allocate, then free the lead-in before the aligned address; the
     * lead-in must be able to stand as a chunk of its own. */
    struct chunk *c = allocate_chunk(size, alignment + MIN_CHUNK);
    uintptr_t start = (uintptr_t)payload(c);
    uintptr_t aligned = (start + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (aligned != start) {
        if (aligned - start < MIN_CHUNK)
            aligned += alignment;
        size_t lead = aligned - start;
        struct chunk *rest = chunk_at(aligned - HEADER);
        rest->head = (chunk_size(c) - lead) | IN_USE | PREV_IN_USE;
        c->head = lead | (c->head & FLAGS);
        release(c);
        c = rest;
    }
    trim(c, chunk_need(size));
    *result = payload(c);
    return 0;
}

void free(void *pointer)
{
    if (pointer)
        release(owned_chunk(pointer));
}

void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        hl_out_of_memory(SIZE_MAX);
    return memset(malloc(total), 0, total);
}

void *realloc(void *pointer, size_t size)
{
    if (!pointer)
        return malloc(size);
    struct chunk *c = owned_chunk(pointer);
    size_t need = chunk_need(size);
    if (size <= heap.end - heap.start && chunk_size(c) >= need) {
        trim(c, need);
        return pointer;
    }
    void *moved = malloc(size);
    memcpy(moved, pointer, chunk_size(c) - HEADER);
    release(c);
    return moved;
}

/* What the top can still hand out: its own header stays behind. */
static size_t top_allocation(void)
{
    if (!heap.top || chunk_size(heap.top) <= 2 * HEADER)
        return 0;
    return chunk_size(heap.top) - 2 * HEADER;
}

size_t hl_heap_free_bytes(void)
{
    if (!heap.ready)
        init();
    size_t total = top_allocation();
    for (unsigned b = 0; b < BINS; b++) {
        for (struct chunk *c = heap.bins[b]; c; c = c->next)
            total += chunk_size(c) - HEADER;
    }
    return total;
}

/* The largest free chunks are all in the highest non-empty list. */
size_t hl_heap_largest_allocation(void)
{
    if (!heap.ready)
        init();
    size_t largest = top_allocation();
    for (unsigned b = BINS; b-- > 0;) {
        if (!heap.bins[b])
            continue;
        for (struct chunk *c = heap.bins[b]; c; c = c->next) {
            if (chunk_size(c) - HEADER > largest)
                largest = chunk_size(c) - HEADER;
        }
        break;
    }
    return largest;
}
