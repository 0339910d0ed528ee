/* Helpers shared by the C test programs: assertions that print the
 * library's error message, key/value literals, and an engine opener.
 * Compiled as C11 and as C++17. */
#ifndef CVG_TEST_UTIL_H
#define CVG_TEST_UTIL_H

#include "converge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A byte-string literal as (ptr, len) arguments. */
#define S(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

#define FAIL_AT(what)                                                          \
  do {                                                                         \
    char msg_[512];                                                            \
    cvg_last_error_message(msg_, sizeof msg_);                                 \
    fprintf(stderr, "%s:%d: %s (last error: \"%s\")\n", __FILE__, __LINE__,    \
            what, msg_);                                                       \
    exit(1);                                                                   \
  } while (0)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      FAIL_AT("check failed: " #cond);                                         \
  } while (0)

/* The call must return `expected`; on failure print both statuses. */
#define EXPECT(expected, call)                                                 \
  do {                                                                         \
    cvg_status_t got_ = (call);                                                \
    if (got_ != (expected)) {                                                  \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__,        \
              __LINE__, #call, cvg_status_name(got_),                          \
              cvg_status_name(expected));                                      \
      FAIL_AT("unexpected status");                                            \
    }                                                                          \
  } while (0)

#define OK(call) EXPECT(CVG_STATUS_OK, call)

/* The status must be `expected` and the thread's last error message must
 * be non-empty. */
#define EXPECT_ERR(expected, call)                                             \
  do {                                                                         \
    EXPECT(expected, call);                                                    \
    CHECK(cvg_last_error_message(NULL, 0) > 0);                                \
  } while (0)

static inline int bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static inline int slice_is(cvg_slice_t s, const char *text) {
  return bytes_eq(s.ptr, s.len, (const uint8_t *)text, strlen(text));
}

/* Open `<base>/<name>` with replica id 16 x `id_byte` and small caches. */
static inline cvg_engine_t *open_engine(const char *base, const char *name,
                                        uint8_t id_byte) {
  char path[1024];
  uint8_t id[16];
  cvg_options_t *opts = cvg_options_new();
  cvg_engine_t *e = NULL;
  snprintf(path, sizeof path, "%s/%s", base, name);
  memset(id, id_byte, sizeof id);
  CHECK(opts != NULL);
  OK(cvg_options_set_replica_id(opts, id, sizeof id));
  OK(cvg_options_set_block_cache_bytes(opts, 1 << 20));
  OK(cvg_options_set_write_buffer_bytes(opts, 1 << 20));
  OK(cvg_options_set_background_jobs(opts, 1));
  OK(cvg_engine_open(path, opts, &e));
  cvg_options_free(opts);
  CHECK(e != NULL);
  return e;
}

/* The test programs' sections, one per file. */
void test_version_and_errors(void);
void test_options_and_open(const char *base);
void test_counters(const char *base);
void test_sets(const char *base);
void test_registers(const char *base);
void test_mv_and_resolve(const char *base);
void test_batches(const char *base);
void test_iteration(const char *base);
void test_convergence(const char *base);
void test_bad_input(const char *base);
void test_threads(const char *base);
void test_sync_sessions(const char *base);
void test_bulk(const char *base);
void test_sync_loop(const char *base);
void test_tokens(const char *base);
void test_delivery(const char *base);
void test_close(const char *base);
void test_deletes(const char *base);

#endif
