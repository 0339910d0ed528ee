/*
 * The C side of `make bench-python`: the same workloads as bench.py, made
 * through the C ABI from C, against the same libconverge.
 *
 *   bench_c DIR call|batch CALLS BATCH_OPS BATCH_KEYS REPS
 *
 * Prints one JSON object per line: {"case": ..., "seconds": [...]}.
 * `call` times CALLS increments of one key (seconds per call); `batch`
 * times building a batch of BATCH_OPS increments over BATCH_KEYS keys and
 * writing it (with and without deltas). Every repetition uses a fresh
 * store. bench.py alternates runs of this program with the Python runs.
 */
#define _POSIX_C_SOURCE 200809L
#include <converge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(cvg_status_t s, const char *what) {
  if (s != 0) {
    char msg[512];
    cvg_last_error_message(msg, sizeof msg);
    fprintf(stderr, "%s: %s: %s\n", what, cvg_status_name(s), msg);
    exit(1);
  }
}

static cvg_engine_t *open_engine(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  cvg_options_t *o = cvg_options_new();
  check(cvg_options_set_durability(o, CVG_DURABILITY_BUFFERED), "durability");
  cvg_engine_t *e = NULL;
  check(cvg_engine_open(path, o, &e), "open");
  cvg_options_free(o);
  return e;
}

static void print_case(const char *name, const double *secs, int reps) {
  printf("{\"case\": \"%s\", \"seconds\": [", name);
  for (int i = 0; i < reps; i++) printf("%s%.9f", i ? ", " : "", secs[i]);
  printf("]}\n");
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s DIR call|batch CALLS BATCH_OPS BATCH_KEYS REPS\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int do_calls = strcmp(argv[2], "call") == 0, do_batch = strcmp(argv[2], "batch") == 0;
  long calls = atol(argv[3]), ops = atol(argv[4]), nkeys = atol(argv[5]);
  int reps = atoi(argv[6]);
  if (reps < 1 || (!do_calls && !do_batch)) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  double *secs = calloc((size_t)reps, sizeof(double));
  char name[64];
  const uint8_t *key = (const uint8_t *)"likes";

  for (int with_delta = 1; do_calls && with_delta >= 0; with_delta--) {
    for (int r = 0; r < reps; r++) {
      snprintf(name, sizeof name, "c-call-%d-%d", with_delta, r);
      cvg_engine_t *e = open_engine(dir, name);
      double t0 = now();
      for (long i = 0; i < calls; i++) {
        cvg_bytes_t d = {NULL, 0};
        check(cvg_engine_increment(e, key, 5, 1, with_delta ? &d : NULL), "increment");
        cvg_bytes_free(&d);
      }
      secs[r] = (now() - t0) / (double)calls;
      check(cvg_engine_close(e), "close");
    }
    print_case(with_delta ? "call_increment_delta" : "call_increment_nodelta", secs, reps);
  }

  /* The cost of the call itself: a NULL engine fails at once (and sets the
   * message), the same work bench.py times through ctypes. */
  for (int r = 0; do_calls && r < reps; r++) {
    double t0 = now();
    for (long i = 0; i < calls; i++) {
      cvg_bytes_t d = {NULL, 0};
      if (cvg_engine_increment(NULL, key, 5, 1, &d) != 2) {
        fprintf(stderr, "expected CVG_STATUS_NULL_POINTER\n");
        return 1;
      }
      cvg_bytes_free(&d);
    }
    secs[r] = (now() - t0) / (double)calls;
  }
  if (do_calls) print_case("call_null_engine", secs, reps);

  char (*keys)[32] = malloc((size_t)nkeys * 32);
  for (long k = 0; k < nkeys; k++) snprintf(keys[k], 32, "key:%05ld", k);
  double *build = calloc((size_t)reps, sizeof(double));
  for (int with_deltas = 1; do_batch && with_deltas >= 0; with_deltas--) {
    for (int r = 0; r < reps; r++) {
      snprintf(name, sizeof name, "c-batch-%d-%d", with_deltas, r);
      cvg_engine_t *e = open_engine(dir, name);
      double t0 = now();
      cvg_batch_t *b = cvg_batch_new();
      for (long i = 0; i < ops; i++) {
        const char *k = keys[i % nkeys];
        check(cvg_batch_increment(b, (const uint8_t *)k, strlen(k), 1), "batch_increment");
      }
      double t1 = now();
      cvg_deltas_t *d = NULL;
      check(cvg_engine_write(e, b, with_deltas ? &d : NULL), "write");
      size_t n = cvg_deltas_len(d);
      size_t total = 0;
      for (size_t i = 0; i < n; i++) {
        cvg_slice_t ks, ds;
        check(cvg_deltas_get(d, i, &ks, &ds), "deltas_get");
        total += ks.len + ds.len;
      }
      cvg_deltas_free(d);
      cvg_batch_free(b);
      double t2 = now();
      build[r] = t1 - t0;
      secs[r] = t2 - t0;
      if (with_deltas && total == 0) {
        fprintf(stderr, "no deltas\n");
        return 1;
      }
      check(cvg_engine_close(e), "close");
    }
    print_case(with_deltas ? "batch_total_deltas" : "batch_total_nodeltas", secs, reps);
    print_case(with_deltas ? "batch_build_deltas" : "batch_build_nodeltas", build, reps);
  }
  free(keys);
  free(build);
  free(secs);
  return 0;
}
