/*
 * Loaded into the lab's sanlock daemons (LD_PRELOAD) only where the process may not raise its
 * resource limits (a container without CAP_SYS_RESOURCE): sanlock exits when it cannot set its
 * memlock and realtime-priority limits, which it only needs for mlockall and RR scheduling that
 * the lab does not use. Those two calls succeed without changing anything; every other call is
 * the real one. See shared-storage.ts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/resource.h>

int setrlimit(__rlimit_resource_t resource, const struct rlimit *limit) {
  int (*real)(__rlimit_resource_t, const struct rlimit *) = dlsym(RTLD_NEXT, "setrlimit");
  if (real(resource, limit) == 0) return 0;
  if (resource == RLIMIT_MEMLOCK || resource == RLIMIT_RTPRIO) return 0;
  return -1;
}
