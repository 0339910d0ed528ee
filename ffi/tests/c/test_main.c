/* The C test program: `test_api <empty scratch dir>`. Each section lives in
 * its own file; this one holds main, the version checks, error reporting,
 * options and open/close. */
#include "util.h"

#ifndef CVG_EXPECTED_VERSION
#error "compile with -DCVG_EXPECTED_VERSION=\"x.y.z\" (the workspace version)"
#endif

void test_version_and_errors(void) {
  char buf[64];
  char small[4];
  size_t need;

  /* The library, the header macros and Cargo.toml agree. */
  CHECK(strcmp(cvg_version(), CVG_EXPECTED_VERSION) == 0);
  snprintf(buf, sizeof buf, "%d.%d.%d", CONVERGE_VERSION_MAJOR,
           CONVERGE_VERSION_MINOR, CONVERGE_VERSION_PATCH);
  CHECK(strcmp(buf, CVG_EXPECTED_VERSION) == 0);
  CHECK(CONVERGE_VERSION_NUMBER == CONVERGE_VERSION_MAJOR * 10000 +
                                       CONVERGE_VERSION_MINOR * 100 +
                                       CONVERGE_VERSION_PATCH);

  /* Status names are static and follow the numbers. */
  CHECK(strcmp(cvg_status_name(CVG_STATUS_OK), "CVG_STATUS_OK") == 0);
  CHECK(CVG_STATUS_OK == 0 && CVG_STATUS_INVALID_ARGUMENT == 1 &&
        CVG_STATUS_NULL_POINTER == 2 && CVG_STATUS_WRONG_TYPE == 3 &&
        CVG_STATUS_KEY_TOO_LARGE == 4 && CVG_STATUS_VALUE_TOO_LARGE == 5 &&
        CVG_STATUS_CORRUPT_INPUT == 6 && CVG_STATUS_CORRUPTION == 7 &&
        CVG_STATUS_STORAGE == 8 && CVG_STATUS_POISONED == 9 &&
        CVG_STATUS_REPLICA_MISMATCH == 10 &&
        CVG_STATUS_UNSUPPORTED_FORMAT == 11 && CVG_STATUS_OVERFLOW == 12 &&
        CVG_STATUS_MERGE_FUNCTION == 13 && CVG_STATUS_PANIC == 14 &&
        CVG_STATUS_OTHER == 15 && CVG_STATUS_SYNC_PROTOCOL == 16 &&
        CVG_STATUS_STATE_TOO_LARGE == 17 && CVG_STATUS_NOT_YET_VISIBLE == 18 &&
        CVG_STATUS_PENDING_FULL == 19 && CVG_STATUS_CURSOR_TOO_OLD == 20 &&
        CVG_STATUS_CLOSED == 21 && CVG_STATUS_LOCKED == 22 &&
        CVG_STATUS_IO == 23 && CVG_STATUS_BUSY == 24 &&
        CVG_STATUS_NO_SPACE == 25 && CVG_STATUS_BEHIND_HORIZON == 26);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_PENDING_FULL), "CVG_STATUS_PENDING_FULL") == 0);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_CURSOR_TOO_OLD), "CVG_STATUS_CURSOR_TOO_OLD") == 0);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_MERGE_FUNCTION),
               "CVG_STATUS_MERGE_FUNCTION") == 0);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_OTHER), "CVG_STATUS_OTHER") == 0);
  CHECK(strcmp(cvg_status_name(1000), "CVG_STATUS_UNKNOWN") == 0);

  /* CRDT type names. */
  CHECK(strcmp(cvg_crdt_type_name(CVG_CRDT_NONE), "none") == 0);
  CHECK(strcmp(cvg_crdt_type_name(CVG_CRDT_GCOUNTER), "gcounter") == 0);
  CHECK(strcmp(cvg_crdt_type_name(CVG_CRDT_TWOP_SET), "2pset") == 0);
  CHECK(strcmp(cvg_crdt_type_name(CVG_CRDT_MV_REGISTER), "mvreg") == 0);
  CHECK(cvg_crdt_type_name(9) == NULL);

  /* A failure leaves a message; the next call clears it. */
  EXPECT(CVG_STATUS_NULL_POINTER, cvg_engine_flush(NULL));
  need = cvg_last_error_message(NULL, 0);
  CHECK(need == strlen("engine is NULL"));
  CHECK(cvg_last_error_message(buf, sizeof buf) == need);
  CHECK(strcmp(buf, "engine is NULL") == 0);
  /* Truncation: NUL-terminated, full length returned. Reading does not
   * clear. */
  CHECK(cvg_last_error_message(small, sizeof small) == need);
  CHECK(strcmp(small, "eng") == 0);
  CHECK(cvg_last_error_message(NULL, 0) == need);
  /* Infallible helpers leave it alone; a status-returning call clears it. */
  CHECK(cvg_batch_len(NULL) == 0);
  cvg_bytes_free(NULL);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_OK), "CVG_STATUS_OK") == 0);
  CHECK(cvg_last_error_message(NULL, 0) == need);
  EXPECT(CVG_STATUS_NULL_POINTER, cvg_options_set_compression(NULL, true));
  CHECK(cvg_last_error_message(buf, sizeof buf) == strlen("options is NULL"));
  {
    cvg_options_t *o = cvg_options_new();
    OK(cvg_options_set_compression(o, true));
    cvg_options_free(o);
  }
  CHECK(cvg_last_error_message(buf, sizeof buf) == 0);
  CHECK(buf[0] == '\0');
}

void test_options_and_open(const char *base) {
  char path[1024];
  uint8_t id[16], other[16], got[16];
  cvg_options_t *opts = cvg_options_new();
  cvg_engine_t *e = NULL, *e2 = NULL;
  cvg_engine_t *untouched = (cvg_engine_t *)&path; /* sentinel */
  const cvg_engine_t *ce;

  memset(id, 0xA1, sizeof id);
  memset(other, 0xB2, sizeof other);
  CHECK(opts != NULL);

  /* Every setter: valid values succeed, invalid ones are typed errors. */
  OK(cvg_options_set_replica_id(opts, id, sizeof id));
  OK(cvg_options_set_replica_id(opts, NULL, 0));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_options_set_replica_id(opts, id, 15));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_replica_id(opts, NULL, 16));
  OK(cvg_options_set_replica_id(opts, id, sizeof id));
  OK(cvg_options_set_durability(opts, CVG_DURABILITY_SYNC));
  OK(cvg_options_set_durability(opts, CVG_DURABILITY_NONE));
  OK(cvg_options_set_durability(opts, CVG_DURABILITY_BUFFERED));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_options_set_durability(opts, 3));
  OK(cvg_options_set_create_if_missing(opts, true));
  OK(cvg_options_set_block_cache_bytes(opts, 1 << 20));
  OK(cvg_options_set_write_buffer_bytes(opts, 1 << 20));
  OK(cvg_options_set_background_jobs(opts, 1));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_options_set_background_jobs(opts, 0));
  OK(cvg_options_set_compression(opts, false));
  OK(cvg_options_set_bloom_bits_per_key(opts, 12.5));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_options_set_bloom_bits_per_key(opts, -1.0));
  OK(cvg_options_set_lock_stripes(opts, 64));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_options_set_lock_stripes(opts, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_options_set_durability(NULL, CVG_DURABILITY_SYNC));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_create_if_missing(NULL, true));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_block_cache_bytes(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_write_buffer_bytes(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_background_jobs(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_compression(NULL, true));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_bloom_bits_per_key(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_lock_stripes(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_replica_id(NULL, id, 16));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_anti_entropy(NULL, true));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_max_successive_merges(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_type_cache_entries(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_state_cache_bytes(NULL, 1));

  /* Without anti-entropy: writes work, the tree calls are refused. */
  snprintf(path, sizeof path, "%s/no-aae", base);
  OK(cvg_options_set_anti_entropy(opts, false));
  OK(cvg_options_set_max_successive_merges(opts, 32));
  OK(cvg_options_set_type_cache_entries(opts, 0));
  OK(cvg_options_set_state_cache_bytes(opts, 0));
  OK(cvg_engine_open(path, opts, &e));
  OK(cvg_engine_increment(e, S("k"), 1, NULL));
  {
    cvg_root_t root;
    bool consistent;
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_root(e, &root));
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_verify(e, &consistent, NULL));
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_settle(e, NULL));
  }
  OK(cvg_engine_close(e));
  e = NULL;
  OK(cvg_options_set_anti_entropy(opts, true));
  OK(cvg_options_set_max_successive_merges(opts, 0));
  OK(cvg_options_set_type_cache_entries(opts, 1 << 16));
  OK(cvg_options_set_state_cache_bytes(opts, 64 << 20));

  /* Open: bad arguments, then a real open. */
  snprintf(path, sizeof path, "%s/open", base);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_open(NULL, opts, &e));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_open(path, opts, NULL));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_open("", opts, &e));
  OK(cvg_options_set_create_if_missing(opts, false));
  e2 = untouched;
  EXPECT_ERR(CVG_STATUS_STORAGE, cvg_engine_open(path, opts, &e2));
  CHECK(e2 == untouched); /* outputs only on success */
  OK(cvg_options_set_create_if_missing(opts, true));
  OK(cvg_engine_open(path, opts, &e));
  ce = e;
  OK(cvg_engine_replica_id(ce, got));
  CHECK(memcmp(got, id, 16) == 0);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_replica_id(ce, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_replica_id(NULL, got));
  /* The directory is locked while open. */
  EXPECT_ERR(CVG_STATUS_LOCKED, cvg_engine_open(path, opts, &e2));
  OK(cvg_engine_increment(ce, S("persisted"), 7, NULL));
  OK(cvg_engine_close(e));

  /* Another replica id for the same store is refused. */
  OK(cvg_options_set_replica_id(opts, other, sizeof other));
  EXPECT_ERR(CVG_STATUS_REPLICA_MISMATCH, cvg_engine_open(path, opts, &e2));
  /* Default options (NULL) reopen with the stored id; data persisted. */
  OK(cvg_engine_open(path, NULL, &e));
  {
    int64_t v = 0;
    OK(cvg_engine_replica_id(e, got));
    CHECK(memcmp(got, id, 16) == 0);
    OK(cvg_engine_counter_value(e, S("persisted"), &v));
    CHECK(v == 7);
  }
  OK(cvg_engine_close(e));
  OK(cvg_engine_close(NULL));
  cvg_options_free(opts);
  cvg_options_free(NULL);
}

int main(int argc, char **argv) {
  const char *base;
  if (argc != 2) {
    fprintf(stderr, "usage: %s <empty scratch directory>\n", argv[0]);
    return 2;
  }
  base = argv[1];
  test_version_and_errors();
  test_options_and_open(base);
  test_counters(base);
  test_sets(base);
  test_registers(base);
  test_mv_and_resolve(base);
  test_batches(base);
  test_iteration(base);
  test_convergence(base);
  test_bad_input(base);
  test_threads(base);
  test_sync_sessions(base);
  test_bulk(base);
  test_sync_loop(base);
  test_tokens(base);
  test_delivery(base);
  test_close(base);
  test_deletes(base);
  printf("converge C API tests: 18 passed, 0 failed\n");
  return 0;
}
