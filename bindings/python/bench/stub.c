/*
 * No-op stand-ins with the signatures of cvg_engine_increment and
 * cvg_bytes_free, for bench.py: Counter.increment is timed against them so
 * that what is measured is only the Python side of a call (argument
 * checks, the engine pointer check, ctypes, copying a 40-byte delta), with no
 * RocksDB write and its noise in it.
 */
#include <converge.h>

static uint8_t delta[40];

cvg_status_t stub_increment(const cvg_engine_t *engine, const uint8_t *key, size_t key_len,
                            uint64_t n, cvg_bytes_t *delta_out) {
  (void)engine;
  (void)key;
  (void)key_len;
  (void)n;
  delta_out->ptr = delta;
  delta_out->len = sizeof delta;
  return 0;
}

void stub_bytes_free(cvg_bytes_t *bytes) {
  bytes->ptr = NULL;
  bytes->len = 0;
}
