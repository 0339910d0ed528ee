/* Failing fsync, injected with LD_PRELOAD into a child process of
 * engine/tests/io_faults.rs: once armed with converge_fault_arm(n), the
 * first n calls of fsync/fdatasync pass and every later one fails with EIO
 * (a device that stopped persisting), without touching the file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>

static long calls_left = -1; /* -1: not armed */

void converge_fault_arm(long n) { __atomic_store_n(&calls_left, n, __ATOMIC_SEQ_CST); }

static int fail_now(void) {
  long left = __atomic_load_n(&calls_left, __ATOMIC_SEQ_CST);
  while (left > 0) {
    if (__atomic_compare_exchange_n(&calls_left, &left, left - 1, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
      return 0;
  }
  return left == 0;
}

/* Fail with EIO once armed calls run out, else call the real `name`. */
static int sync_call(int fd, int (**real)(int), const char *name) {
  if (fail_now()) {
    errno = EIO;
    return -1;
  }
  if (!*real)
    *real = (int (*)(int))dlsym(RTLD_NEXT, name);
  return (*real)(fd);
}

int fsync(int fd) {
  static int (*real)(int);
  return sync_call(fd, &real, "fsync");
}

int fdatasync(int fd) {
  static int (*real)(int);
  return sync_call(fd, &real, "fdatasync");
}
