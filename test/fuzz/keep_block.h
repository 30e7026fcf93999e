/*
 * keep_block.h: one large allocation kept across fuzz inputs.
 *
 * A reader that callocs a record of hundreds of KiB or more per load (the
 * hub's cfg_t, the catalogue loader's record of the file) spends most of a
 * fuzz input in ASan's mmap, poison and munmap of it. A harness linked with
 * -Wl,--wrap=calloc -Wl,--wrap=free and including this file (once, after
 * defining `static void fail(const char *what)`) sets keep_block_min; the
 * first calloc(1, n) with n >= keep_block_min is then served from one block
 * kept across inputs, zeroed on each calloc and poisoned while free:
 * overflows still hit the block's own redzone, a use after free hits the
 * poison, a double free fails, and keep_block_in_use() tells whether the
 * code under test left it allocated.
 */
#ifndef NHUB_FUZZ_KEEP_BLOCK_H
#define NHUB_FUZZ_KEEP_BLOCK_H

#include <sanitizer/asan_interface.h>
#include <stddef.h>
#include <string.h>

void *__real_calloc(size_t n, size_t size);
void __real_free(void *p);
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);

static size_t keep_block_min; /* 0: nothing is kept */
static void *keep_block;
static size_t keep_block_size;
static int keep_block_used;

void *__wrap_calloc(size_t n, size_t size)
{
    if (n != 1 || !keep_block_min || size < keep_block_min || keep_block_used ||
        (keep_block && size != keep_block_size))
        return __real_calloc(n, size);
    if (!keep_block) {
        keep_block = __real_calloc(1, size);
        keep_block_size = size;
        keep_block_used = keep_block != NULL;
        return keep_block;
    }
    ASAN_UNPOISON_MEMORY_REGION(keep_block, keep_block_size);
    memset(keep_block, 0, keep_block_size);
    keep_block_used = 1;
    return keep_block;
}

void __wrap_free(void *p)
{
    if (!p || p != keep_block) {
        __real_free(p);
        return;
    }
    if (!keep_block_used)
        fail("the kept block was freed twice");
    keep_block_used = 0;
    ASAN_POISON_MEMORY_REGION(keep_block, keep_block_size);
}

static int keep_block_in_use(void)
{
    return keep_block_used;
}

#endif
