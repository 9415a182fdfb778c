/* SPDX-License-Identifier: MIT */

/*
 * Runs a libFuzzer target without libFuzzer (the meson build uses gcc):
 * replays every file of the seed corpus directories given on the command
 * line, then mutates them deterministically (xorshift, fixed seed) for
 * --iterations rounds. A crash or a failed assert fails the test; TAP out.
 *
 *   fuzz-qga-driver [--iterations N] [--seed S] CORPUS_DIR...
 */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INPUT_MAX (256u * 1024u)
#define MAX_SEEDS 1024u

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

typedef struct Seed {
        uint8_t *data;
        size_t size;
} Seed;

static Seed seeds[MAX_SEEDS];
static size_t n_seeds;

static int load_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;

        if (!d)
                return -1;
        while ((e = readdir(d)) && n_seeds < MAX_SEEDS) {
                char path[4096];
                FILE *f;
                Seed *s;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                f = fopen(path, "rbe");
                if (!f)
                        continue;
                s = seeds + n_seeds;
                s->data = malloc(FUZZ_INPUT_MAX);
                if (!s->data) {
                        fclose(f);
                        break;
                }
                s->size = fread(s->data, 1, FUZZ_INPUT_MAX, f);
                fclose(f);
                n_seeds++;
        }
        closedir(d);
        return 0;
}

/* Byte flips, insertions of interesting bytes and tokens, deletions, splices. */
static size_t mutate(uint8_t *buf, size_t size) {
        static const char *const tokens[] = { "\xff", "{", "}", "\"return\"", "\"error\"", ":", ",", "42",
                                              "\"buf-b64\"", "\"count\"", "[", "]", "\\u0000", "\"", "\n",
                                              "99999999999999999999999", "1e999", "\xc3\x28", "null", "==" };
        unsigned rounds = 1 + (unsigned) (rng() % 8);

        for (unsigned i = 0; i < rounds; i++) {
                size_t pos = size ? (size_t) (rng() % size) : 0;

                switch (rng() % 5) {
                case 0:
                        if (size)
                                buf[pos] ^= (uint8_t) (1u << (rng() % 8));
                        break;
                case 1:
                        if (size)
                                buf[pos] = (uint8_t) rng();
                        break;
                case 2: {
                        const char *t = tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))];
                        size_t n = strlen(t);

                        if (size + n <= FUZZ_INPUT_MAX) {
                                memmove(buf + pos + n, buf + pos, size - pos);
                                memcpy(buf + pos, t, n);
                                size += n;
                        }
                        break;
                }
                case 3:
                        if (size) {
                                size_t n = 1 + (size_t) (rng() % 16);

                                if (n > size - pos)
                                        n = size - pos;
                                memmove(buf + pos, buf + pos + n, size - pos - n);
                                size -= n;
                        }
                        break;
                case 4: {
                        const Seed *o = seeds + rng() % n_seeds;

                        if (o->size) {
                                size_t from = (size_t) (rng() % o->size), n = o->size - from;

                                if (pos + n > FUZZ_INPUT_MAX)
                                        n = FUZZ_INPUT_MAX - pos;
                                memcpy(buf + pos, o->data + from, n);
                                if (pos + n > size)
                                        size = pos + n;
                        }
                        break;
                }
                }
        }
        return size;
}

int main(int argc, char **argv) {
        unsigned long iterations = 20000;
        uint8_t *buf = malloc(FUZZ_INPUT_MAX);
        int i = 1;

        for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
                        iterations = strtoul(argv[++i], NULL, 0);
                else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
                        rng_state = strtoull(argv[++i], NULL, 0) | 1;
                else {
                        fprintf(stderr, "usage: %s [--iterations N] [--seed S] CORPUS_DIR...\n", argv[0]);
                        return 2;
                }
        }
        for (; i < argc; i++)
                if (load_dir(argv[i]) < 0) {
                        printf("not ok 1 - cannot read corpus %s\n1..1\n", argv[i]);
                        return 1;
                }
        if (!buf || n_seeds == 0) {
                printf("not ok 1 - no seeds\n1..1\n");
                return 1;
        }
        for (size_t s = 0; s < n_seeds; s++)
                LLVMFuzzerTestOneInput(seeds[s].data, seeds[s].size);
        printf("ok 1 - %zu seed inputs replayed\n", n_seeds);
        for (unsigned long k = 0; k < iterations; k++) {
                const Seed *s = seeds + rng() % n_seeds;
                size_t size = s->size;

                memcpy(buf, s->data, size);
                size = mutate(buf, size);
                LLVMFuzzerTestOneInput(buf, size);
        }
        printf("ok 2 - %lu mutated inputs without a crash or failed check\n1..2\n", iterations);
        free(buf);
        for (size_t s = 0; s < n_seeds; s++)
                free(seeds[s].data);
        return 0;
}
