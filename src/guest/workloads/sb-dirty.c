/*
 * sb-dirty: keeps re-dirtying guest memory at a chosen rate, for live-migration tests.
 *
 *   sb-dirty --rate-mib <N|0 for max> --size-mib <M> [--seconds <S>] [--content random|mixed]
 *
 * Copies data over an M MiB working set, page by page, at N MiB/s. QEMU skips zero pages and
 * xbzrle skips unchanged bytes, so passes alternate between two different buffers: every non-zero
 * page written differs from what the previous pass left there. `random` (the default): non-zero
 * random bytes, the worst case for compression. `mixed`, closer to a real guest's memory: a quarter
 * of the pages zero, a third compressible text, the rest random.
 * Runs until killed (or for S seconds); on exit prints the bytes written and the average rate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL
/* Rate control granularity: check the clock after every chunk of this many bytes. */
#define CHUNK (256UL * 1024UL)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr,
          "usage: sb-dirty --rate-mib <N|0 for max> --size-mib <M> [--seconds <S>] [--content random|mixed]\n");
  exit(2);
}

static unsigned long parse_number(const char *flag, const char *value) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(value, &end, 10);
  if (errno != 0 || *value == '\0' || *end != '\0' || value[0] == '-') {
    fprintf(stderr, "sb-dirty: %s must be a non-negative integer, got '%s'\n", flag, value);
    exit(2);
  }
  return n;
}

/* Fills a buffer with xorshift output in which no byte is zero. */
static void fill_random(unsigned char *buf, size_t len, uint64_t seed) {
  uint64_t x = seed;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned char b = (unsigned char)(x >> 24);
    buf[i] = b == 0 ? 0x5a : b;
  }
}

/*
 * A mix of page kinds per CHUNK: 16 of its 64 pages zero, 22 of compressible text (sentences that
 * differ between the two buffers, so each pass changes them), 26 random.
 */
static void fill_mixed(unsigned char *buf, size_t len, uint64_t seed, int variant) {
  static const char *const text[2] = {
      "the quick brown fox jumps over the lazy dog; ",
      "pack my box with five dozen liquor jugs, now! ",
  };
  fill_random(buf, len, seed);
  for (size_t page = 0; page * PAGE < len; page++) {
    unsigned char *p = buf + page * PAGE;
    size_t kind = page % 64;
    if (kind < 16) {
      memset(p, 0, PAGE);
    } else if (kind < 38) {
      size_t n = strlen(text[variant]);
      for (size_t i = 0; i < PAGE; i++) p[i] = (unsigned char)text[variant][i % n];
    }
  }
}

int main(int argc, char **argv) {
  long rate_mib = -1, size_mib = -1;
  unsigned long seconds = 0;
  int mixed = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--rate-mib") == 0) rate_mib = (long)parse_number(argv[i], argv[i + 1]);
    else if (strcmp(argv[i], "--size-mib") == 0) size_mib = (long)parse_number(argv[i], argv[i + 1]);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = parse_number(argv[i], argv[i + 1]);
    else if (strcmp(argv[i], "--content") == 0) {
      if (strcmp(argv[i + 1], "mixed") == 0) mixed = 1;
      else if (strcmp(argv[i + 1], "random") != 0) {
        fprintf(stderr, "sb-dirty: --content must be random or mixed, got '%s'\n", argv[i + 1]);
        return 2;
      }
    } else usage();
    i++;
  }
  if (rate_mib < 0 || size_mib < 0) usage();
  if (size_mib == 0) {
    fprintf(stderr, "sb-dirty: --size-mib must be at least 1\n");
    return 2;
  }

  size_t size = (size_t)size_mib * MIB;
  unsigned char *set = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  unsigned char *pattern[2];
  pattern[0] = malloc(CHUNK);
  pattern[1] = malloc(CHUNK);
  if (set == MAP_FAILED || pattern[0] == NULL || pattern[1] == NULL) {
    fprintf(stderr, "sb-dirty: cannot allocate %ld MiB: %s\n", size_mib, strerror(errno));
    return 1;
  }
  uint64_t seeds[2] = {0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL), 0xd1b54a32d192ed03ULL ^ (uint64_t)clock()};
  for (int v = 0; v < 2; v++) {
    if (mixed) fill_mixed(pattern[v], CHUNK, seeds[v], v);
    else fill_random(pattern[v], CHUNK, seeds[v]);
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  const char *content = mixed ? "mixed" : "random";
  if (rate_mib == 0) printf("sb-dirty: size %ld MiB, rate max, %s content\n", size_mib, content);
  else printf("sb-dirty: size %ld MiB, rate %ld MiB/s, %s content\n", size_mib, rate_mib, content);
  fflush(stdout);

  double start = now_s();
  double bytes_per_s = (double)rate_mib * (double)MIB;
  unsigned long long written = 0;
  unsigned long pass = 0;
  size_t offset = 0;
  while (!stop_requested) {
    size_t len = size - offset < CHUNK ? size - offset : CHUNK;
    memcpy(set + offset, pattern[pass & 1], len);
    written += len;
    offset += len;
    if (offset >= size) {
      offset = 0;
      pass++;
    }
    double elapsed = now_s() - start;
    if (seconds > 0 && elapsed >= (double)seconds) break;
    if (rate_mib > 0) {
      /* Sleep until the bytes written so far match the requested rate. */
      double ahead = (double)written / bytes_per_s - elapsed;
      if (ahead > 0.001) {
        struct timespec ts = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
  }
  double elapsed = now_s() - start;
  printf("sb-dirty: wrote %llu MiB in %.1f s (%.1f MiB/s, %lu passes)\n", written / MIB, elapsed,
         elapsed > 0 ? (double)written / MIB / elapsed : 0.0, pass);
  return 0;
}
