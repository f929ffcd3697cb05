/*
 * sb-iobench: random 4 KiB I/O on a file for a few seconds, reporting IOPS and completion-latency
 * percentiles in the shape of `fio --output-format=json` (the fields src/guest/fio.ts reads), so a
 * test parses it like fio's. A stand-in for Debian's fio, whose shared libraries (ceph, gluster,
 * ICU: ~80 MB) would not fit the initramfs of a 128 MiB guest.
 *
 *   sb-iobench --file <path> [--rw randread|randwrite|randrw] [--size-mib <n>] [--seconds <s>]
 *              [--bs <bytes>]
 *
 * One job, queue depth 1, O_DIRECT (page cache bypassed, so every operation reaches the disk);
 * randrw is half reads, half writes. The file is laid out (written once) first when it is
 * shorter than --size-mib, so reads hit allocated blocks. Each operation's latency is kept (up to
 * MAX_SAMPLES, then the first MAX_SAMPLES), sorted at the end for the percentiles.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1u << 20)

static const double PERCENTILES[] = {1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99};

struct direction {
  uint64_t ios, bytes, sum_ns, min_ns, max_ns;
  uint32_t *samples;
  uint32_t n_samples;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr, "usage: sb-iobench --file <path> [--rw randread|randwrite|randrw] [--size-mib <n>] "
                  "[--seconds <s>] [--bs <bytes>]\n");
  exit(2);
}

static unsigned long parse_number(const char *flag, const char *value) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(value, &end, 10);
  if (errno != 0 || *value == '\0' || *end != '\0' || value[0] == '-' || n == 0) {
    fprintf(stderr, "sb-iobench: %s must be a positive integer, got '%s'\n", flag, value);
    exit(2);
  }
  return n;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void record(struct direction *d, uint64_t ns, unsigned bs) {
  d->ios++;
  d->bytes += bs;
  d->sum_ns += ns;
  if (d->min_ns == 0 || ns < d->min_ns) d->min_ns = ns;
  if (ns > d->max_ns) d->max_ns = ns;
  if (d->n_samples < MAX_SAMPLES) d->samples[d->n_samples++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void print_direction(const char *name, struct direction *d, double seconds, int last) {
  double mean = d->ios ? (double)d->sum_ns / (double)d->ios : 0;
  printf("      \"%s\": {\"io_bytes\": %llu, \"bw_bytes\": %.0f, \"iops\": %.6f, \"runtime\": %.0f, "
         "\"total_ios\": %llu,\n        \"clat_ns\": {\"min\": %llu, \"max\": %llu, \"mean\": %.3f, \"N\": %llu",
         name, (unsigned long long)d->bytes, d->bytes / seconds, d->ios / seconds, seconds * 1000,
         (unsigned long long)d->ios, (unsigned long long)d->min_ns, (unsigned long long)d->max_ns, mean,
         (unsigned long long)d->ios);
  if (d->n_samples) {
    qsort(d->samples, d->n_samples, sizeof d->samples[0], cmp_u32);
    printf(", \"percentile\": {");
    for (size_t i = 0; i < sizeof PERCENTILES / sizeof PERCENTILES[0]; i++) {
      size_t at = (size_t)((PERCENTILES[i] / 100.0) * d->n_samples);
      if (at >= d->n_samples) at = d->n_samples - 1;
      printf("%s\"%f\": %u", i ? ", " : "", PERCENTILES[i], d->samples[at]);
    }
    printf("}");
  }
  printf("}}%s\n", last ? "" : ",");
}

int main(int argc, char **argv) {
  const char *file = NULL, *rw = "randrw";
  unsigned long size_mib = 64, seconds = 5, bs = 4096;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (!strcmp(argv[i], "--file")) file = argv[++i];
    else if (!strcmp(argv[i], "--rw")) rw = argv[++i];
    else if (!strcmp(argv[i], "--size-mib")) size_mib = parse_number("--size-mib", argv[++i]);
    else if (!strcmp(argv[i], "--seconds")) seconds = parse_number("--seconds", argv[++i]);
    else if (!strcmp(argv[i], "--bs")) bs = parse_number("--bs", argv[++i]);
    else usage();
  }
  int reads = !strcmp(rw, "randread") || !strcmp(rw, "randrw");
  int writes = !strcmp(rw, "randwrite") || !strcmp(rw, "randrw");
  if (!file || (!reads && !writes) || bs % 512 != 0) usage();

  int fd = open(file, O_RDWR | O_CREAT | O_DIRECT, 0644);
  if (fd < 0) {
    fprintf(stderr, "sb-iobench: open %s: %s\n", file, strerror(errno));
    return 1;
  }
  uint64_t size = (uint64_t)size_mib << 20;
  void *buf;
  const size_t layout_chunk = 1 << 20;
  if (posix_memalign(&buf, 4096, layout_chunk) != 0) return 1;
  for (size_t i = 0; i < layout_chunk; i++) ((unsigned char *)buf)[i] = (unsigned char)(i * 131 + 7);
  struct stat st;
  if (fstat(fd, &st) != 0) return 1;
  for (uint64_t off = (uint64_t)st.st_size & ~(uint64_t)(layout_chunk - 1); off < size; off += layout_chunk) {
    if (pwrite(fd, buf, layout_chunk, (off_t)off) != (ssize_t)layout_chunk) {
      fprintf(stderr, "sb-iobench: laying out %s: %s\n", file, strerror(errno));
      return 1;
    }
  }
  fsync(fd);

  struct direction rd = {0}, wr = {0};
  rd.samples = malloc(sizeof(uint32_t) * MAX_SAMPLES);
  wr.samples = malloc(sizeof(uint32_t) * MAX_SAMPLES);
  if (!rd.samples || !wr.samples) return 1;
  uint64_t blocks = size / bs, seed = now_ns() | 1;
  uint64_t start = now_ns(), until = start + seconds * 1000000000ull, t = start;
  int error = 0;
  while (t < until) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
    off_t off = (off_t)((seed >> 1) % blocks) * (off_t)bs;
    int do_write = writes && (!reads || (seed & 1));
    uint64_t t0 = now_ns();
    ssize_t n = do_write ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off);
    t = now_ns();
    if (n != (ssize_t)bs) {
      error = errno ? errno : EIO;
      break;
    }
    record(do_write ? &wr : &rd, t - t0, (unsigned)bs);
  }
  double elapsed = (double)(t - start) / 1e9;
  if (elapsed <= 0) elapsed = 1e-9;
  printf("{\n  \"fio version\": \"sb-iobench-1\",\n  \"jobs\": [\n    {\"jobname\": \"%s\", \"error\": %d,\n", rw,
         error);
  print_direction("read", &rd, elapsed, 0);
  print_direction("write", &wr, elapsed, 1);
  printf("    }\n  ]\n}\n");
  close(fd);
  return error ? 1 : 0;
}
