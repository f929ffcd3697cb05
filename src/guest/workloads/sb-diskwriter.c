/*
 * sb-diskwriter: appends checksummed, numbered records to a file and verifies them, so a test
 * can prove that no acknowledged write was lost or damaged by a live migration.
 *
 *   sb-diskwriter write --file <path> --rate-kib <N|0 for max> [--count <n>] [--batch <b>]
 *   sb-diskwriter verify --file <path>
 *
 * Record (4096 bytes, little endian): magic "SBR1" (u32), record size (u32), sequence number
 * (u64), CLOCK_REALTIME timestamp in ns (u64), payload derived from the sequence number, and a
 * 64-bit FNV-1a checksum of everything before it. `write` continues the sequence of an existing
 * file and calls fsync after every <b> records (default 1: each record is durable once written).
 * It stops after <n> records, or when killed (SIGTERM/SIGINT: the last batch is synced first).
 * `verify` checks every record's magic, checksum and that sequence numbers run 0, 1, 2, ...; it
 * prints `verified <n> records` and then `max-gap-ms <ms>` (largest time between two consecutive
 * records, i.e. how long the writer was stalled), or names the first bad record and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_SIZE 4096
#define MAGIC 0x31524253u /* "SBR1" */
#define CHECKSUM_OFFSET (RECORD_SIZE - 8)

struct header {
  uint32_t magic;
  uint32_t size;
  uint64_t seq;
  uint64_t timestamp_ns;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: sb-diskwriter write --file <path> --rate-kib <N|0 for max> [--count <n>] [--batch <b>]\n"
          "       sb-diskwriter verify --file <path>\n");
  exit(2);
}

static unsigned long parse_number(const char *flag, const char *value) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(value, &end, 10);
  if (errno != 0 || *value == '\0' || *end != '\0' || value[0] == '-') {
    fprintf(stderr, "sb-diskwriter: %s must be a non-negative integer, got '%s'\n", flag, value);
    exit(2);
  }
  return n;
}

static uint64_t fnv1a(const unsigned char *p, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double monotonic_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void build_record(unsigned char *rec, uint64_t seq) {
  struct header h = {MAGIC, RECORD_SIZE, seq, realtime_ns()};
  memcpy(rec, &h, sizeof h);
  uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = sizeof h; i < CHECKSUM_OFFSET; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rec[i] = (unsigned char)(x >> 32);
  }
  uint64_t sum = fnv1a(rec, CHECKSUM_OFFSET);
  memcpy(rec + CHECKSUM_OFFSET, &sum, sizeof sum);
}

/* Returns NULL when the record is sound, else why not. */
static const char *check_record(const unsigned char *rec, uint64_t expected_seq) {
  struct header h;
  uint64_t sum;
  memcpy(&h, rec, sizeof h);
  memcpy(&sum, rec + CHECKSUM_OFFSET, sizeof sum);
  if (h.magic != MAGIC) return "bad magic";
  if (h.size != RECORD_SIZE) return "bad record size";
  if (sum != fnv1a(rec, CHECKSUM_OFFSET)) return "checksum mismatch";
  if (h.seq != expected_seq) return "sequence gap";
  return NULL;
}

static int read_full(int fd, unsigned char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -1 : (int)done;
    done += (size_t)n;
  }
  return (int)done;
}

static int write_full(int fd, const unsigned char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return 0;
}

static int cmd_verify(const char *file) {
  int fd = open(file, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "sb-diskwriter: cannot open %s: %s\n", file, strerror(errno));
    return 1;
  }
  unsigned char rec[RECORD_SIZE];
  uint64_t n = 0, prev_ts = 0, max_gap_ns = 0;
  for (;;) {
    int got = read_full(fd, rec, RECORD_SIZE);
    if (got < 0) {
      fprintf(stderr, "sb-diskwriter: read error after record %llu: %s\n", (unsigned long long)n,
              strerror(errno));
      return 1;
    }
    if (got == 0) break;
    if (got < RECORD_SIZE) {
      fprintf(stderr, "sb-diskwriter: bad record %llu at offset %llu: partial record (%d bytes)\n",
              (unsigned long long)n, (unsigned long long)n * RECORD_SIZE, got);
      return 1;
    }
    const char *why = check_record(rec, n);
    if (why != NULL) {
      fprintf(stderr, "sb-diskwriter: bad record %llu at offset %llu: %s\n", (unsigned long long)n,
              (unsigned long long)n * RECORD_SIZE, why);
      return 1;
    }
    struct header h;
    memcpy(&h, rec, sizeof h);
    if (n > 0 && h.timestamp_ns > prev_ts && h.timestamp_ns - prev_ts > max_gap_ns)
      max_gap_ns = h.timestamp_ns - prev_ts;
    prev_ts = h.timestamp_ns;
    n++;
  }
  printf("verified %llu records\nmax-gap-ms %.1f\n", (unsigned long long)n, (double)max_gap_ns / 1e6);
  return 0;
}

static int cmd_write(const char *file, unsigned long rate_kib, unsigned long count, unsigned long batch) {
  int fd = open(file, O_RDWR | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    fprintf(stderr, "sb-diskwriter: cannot open %s: %s\n", file, strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    fprintf(stderr, "sb-diskwriter: cannot stat %s: %s\n", file, strerror(errno));
    return 1;
  }
  if (st.st_size % RECORD_SIZE != 0) {
    fprintf(stderr, "sb-diskwriter: %s ends in a partial record; run verify\n", file);
    return 1;
  }
  unsigned char rec[RECORD_SIZE];
  uint64_t first = (uint64_t)st.st_size / RECORD_SIZE;
  if (first > 0) {
    /* Continue the sequence only after a sound last record, so verify can judge the whole file. */
    if (pread(fd, rec, RECORD_SIZE, st.st_size - RECORD_SIZE) != RECORD_SIZE ||
        check_record(rec, first - 1) != NULL) {
      fprintf(stderr, "sb-diskwriter: last record of %s is damaged; run verify\n", file);
      return 1;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  double records_per_s = (double)rate_kib * 1024.0 / RECORD_SIZE;
  double start = monotonic_s();
  uint64_t written = 0;
  while (!stop_requested && (count == 0 || written < count)) {
    build_record(rec, first + written);
    if (write_full(fd, rec, RECORD_SIZE) != 0) {
      fprintf(stderr, "sb-diskwriter: write failed at record %llu: %s\n",
              (unsigned long long)(first + written), strerror(errno));
      return 1;
    }
    written++;
    if (written % batch == 0 && fsync(fd) != 0) {
      fprintf(stderr, "sb-diskwriter: fsync failed: %s\n", strerror(errno));
      return 1;
    }
    if (rate_kib > 0) {
      double ahead = (double)written / records_per_s - (monotonic_s() - start);
      if (ahead > 0.0005) {
        struct timespec ts = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
  }
  if (fsync(fd) != 0) {
    fprintf(stderr, "sb-diskwriter: fsync failed: %s\n", strerror(errno));
    return 1;
  }
  close(fd);
  if (written == 0) printf("wrote 0 records to %s\n", file);
  else
    printf("wrote %llu records (seq %llu..%llu) to %s\n", (unsigned long long)written,
           (unsigned long long)first, (unsigned long long)(first + written - 1), file);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *cmd = argv[1];
  const char *file = NULL;
  long rate_kib = -1;
  unsigned long count = 0, batch = 1;
  int is_write = strcmp(cmd, "write") == 0;
  if (!is_write && strcmp(cmd, "verify") != 0) usage();
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--file") == 0) file = argv[i + 1];
    else if (is_write && strcmp(argv[i], "--rate-kib") == 0)
      rate_kib = (long)parse_number(argv[i], argv[i + 1]);
    else if (is_write && strcmp(argv[i], "--count") == 0) count = parse_number(argv[i], argv[i + 1]);
    else if (is_write && strcmp(argv[i], "--batch") == 0) batch = parse_number(argv[i], argv[i + 1]);
    else usage();
    i++;
  }
  if (file == NULL || (is_write && rate_kib < 0)) usage();
  if (batch == 0) {
    fprintf(stderr, "sb-diskwriter: --batch must be at least 1\n");
    return 2;
  }
  return is_write ? cmd_write(file, (unsigned long)rate_kib, count, batch) : cmd_verify(file);
}
