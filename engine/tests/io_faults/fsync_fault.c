/* Failing fsync, injected with LD_PRELOAD into a child process of
 * engine/tests/io_faults.rs: once armed with converge_fault_arm(n), the
 * first n calls of fsync/fdatasync pass and every later one fails with EIO
 * (a device that stopped persisting), without touching the file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>

static long calls_left = -1; /* -1: not armed */

void converge_fault_arm(long n) { __atomic_store_n(&calls_left, n, __ATOMIC_SEQ_CST); }

long converge_fault_failures(void);
static long failures = 0;
long converge_fault_failures(void) { return __atomic_load_n(&failures, __ATOMIC_SEQ_CST); }

static int fail_now(void) {
  long left = __atomic_load_n(&calls_left, __ATOMIC_SEQ_CST);
  while (left > 0) {
    if (__atomic_compare_exchange_n(&calls_left, &left, left - 1, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
      return 0;
  }
  if (left == 0) {
    __atomic_add_fetch(&failures, 1, __ATOMIC_SEQ_CST);
    return 1;
  }
  return 0;
}

int fsync(int fd) {
  static int (*real)(int);
  if (fail_now()) {
    errno = EIO;
    return -1;
  }
  if (!real)
    real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (fail_now()) {
    errno = EIO;
    return -1;
  }
  if (!real)
    real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return real(fd);
}
