/* MV registers, the merge callback, and atomic batches. */
#include "util.h"

/* Merge function: join the siblings' values with '+' (they arrive ordered
 * by dot). Counts its calls in *user_data. */
static int join_plus(void *user_data, const cvg_sibling_t *siblings,
                     size_t count, cvg_buffer_t *out) {
  size_t i;
  int *calls = (int *)user_data;
  (*calls)++;
  for (i = 0; i < count; i++) {
    if (i > 0 && cvg_buffer_append(out, S("+")) != CVG_STATUS_OK)
      return 1;
    if (cvg_buffer_append(out, siblings[i].value.ptr, siblings[i].value.len) !=
        CVG_STATUS_OK)
      return 1;
  }
  /* NULL arguments are typed errors inside a callback too. */
  if (cvg_buffer_append(NULL, S("x")) != CVG_STATUS_NULL_POINTER)
    return 2;
  if (cvg_buffer_append(out, NULL, 1) != CVG_STATUS_NULL_POINTER)
    return 3;
  return 0;
}

/* A merge function that writes some output and then fails. */
static int failing(void *user_data, const cvg_sibling_t *siblings, size_t count,
                   cvg_buffer_t *out) {
  (void)siblings;
  (void)count;
  *(int *)user_data += 1;
  cvg_buffer_append(out, S("partial"));
  return -7;
}

static size_t sibling_count(const cvg_engine_t *e, const char *key) {
  cvg_siblings_t *s = NULL;
  size_t n;
  OK(cvg_engine_mv_read(e, (const uint8_t *)key, strlen(key), &s, NULL));
  n = cvg_siblings_len(s);
  cvg_siblings_free(s);
  return n;
}

void test_mv_and_resolve(const char *base) {
  cvg_engine_t *a = open_engine(base, "mv-a", 0x0A);
  cvg_engine_t *b = open_engine(base, "mv-b", 0x0B);
  cvg_bytes_t da = {NULL, 0}, db = {NULL, 0}, ctx = {NULL, 0}, d = {NULL, 0};
  cvg_siblings_t *sib = NULL;
  cvg_sibling_t one;
  uint8_t ida[16];
  bool resolved = true;
  int calls = 0;
  cvg_crdt_type_t t;

  OK(cvg_engine_replica_id(a, ida));
  /* Never written: no siblings, a context to write with. */
  OK(cvg_engine_mv_read(a, S("cart"), &sib, &ctx));
  CHECK(cvg_siblings_len(sib) == 0);
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_siblings_get(sib, 0, &one));
  cvg_siblings_free(sib);

  /* Concurrent writes on two replicas become siblings after merging. */
  OK(cvg_engine_mv_write(a, S("cart"), S("apple"), ctx.ptr, ctx.len, &da));
  OK(cvg_engine_mv_write(b, S("cart"), S("pear"), NULL, 0, &db));
  cvg_bytes_free(&ctx);
  OK(cvg_engine_merge(a, S("cart"), db.ptr, db.len));
  OK(cvg_engine_merge(b, S("cart"), da.ptr, da.len));
  cvg_bytes_free(&da);
  cvg_bytes_free(&db);
  OK(cvg_engine_mv_read(a, S("cart"), &sib, NULL));
  CHECK(cvg_siblings_len(sib) == 2);
  OK(cvg_siblings_get(sib, 0, &one));
  CHECK(slice_is(one.value, "apple") && memcmp(one.replica, ida, 16) == 0);
  CHECK(one.counter == 1);
  OK(cvg_siblings_get(sib, 1, &one));
  CHECK(slice_is(one.value, "pear") && one.replica[0] == 0x0B);
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_siblings_get(sib, 2, &one));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_siblings_get(sib, 0, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_siblings_get(NULL, 0, &one));
  CHECK(cvg_siblings_len(NULL) == 0);
  cvg_siblings_free(sib);
  OK(cvg_engine_key_type(a, S("cart"), &t));
  CHECK(t == CVG_CRDT_MV_REGISTER);

  /* A failing merge function: MERGE_FUNCTION, nothing written, outputs
   * untouched. */
  d.ptr = (uint8_t *)&calls;
  EXPECT_ERR(CVG_STATUS_MERGE_FUNCTION,
             cvg_engine_mv_resolve(a, S("cart"), failing, &calls, &resolved, &d));
  CHECK(calls == 1 && resolved && d.ptr == (uint8_t *)&calls);
  d.ptr = NULL;
  CHECK(sibling_count(a, "cart") == 2);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_mv_resolve(a, S("cart"), NULL, &calls, &resolved, &d));

  /* The real merge function replaces both siblings. */
  calls = 0;
  OK(cvg_engine_mv_resolve(a, S("cart"), join_plus, &calls, &resolved, &d));
  CHECK(calls == 1 && resolved && d.len > 0);
  OK(cvg_engine_mv_read(a, S("cart"), &sib, NULL));
  CHECK(cvg_siblings_len(sib) == 1);
  OK(cvg_siblings_get(sib, 0, &one));
  CHECK(slice_is(one.value, "apple+pear"));
  cvg_siblings_free(sib);
  /* Its delta resolves the peer too. */
  OK(cvg_engine_merge(b, S("cart"), d.ptr, d.len));
  cvg_bytes_free(&d);
  CHECK(sibling_count(b, "cart") == 1);

  /* Nothing to resolve: the callback is not called. */
  calls = 0;
  OK(cvg_engine_mv_resolve(a, S("cart"), join_plus, &calls, &resolved, &d));
  CHECK(calls == 0 && !resolved && d.ptr == NULL && d.len == 0);
  OK(cvg_engine_mv_resolve(a, S("never"), join_plus, &calls, NULL, NULL));
  CHECK(calls == 0);

  /* Wrong types. */
  OK(cvg_engine_increment(a, S("n"), 1, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_mv_read(a, S("n"), &sib, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_mv_write(a, S("n"), S("v"), NULL, 0, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE,
             cvg_engine_mv_resolve(a, S("n"), join_plus, &calls, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_mv_read(a, S("cart"), NULL, NULL));
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

void test_batches(const char *base) {
  cvg_engine_t *a = open_engine(base, "batch-a", 0x1A);
  cvg_engine_t *b = open_engine(base, "batch-b", 0x1B);
  cvg_batch_t *batch = cvg_batch_new();
  cvg_deltas_t *deltas = NULL;
  cvg_bytes_t ctx = {NULL, 0}, sa = {NULL, 0}, sb = {NULL, 0};
  cvg_list_t *list = NULL;
  cvg_slice_t key, delta;
  cvg_root_t ra, rb;
  int64_t v = 0;
  size_t i;
  bool found;
  char k[32];

  CHECK(batch != NULL && cvg_batch_len(batch) == 0);
  OK(cvg_engine_set_members(a, S("or"), &list, &ctx));
  cvg_list_free(list);
  /* One of every operation. */
  OK(cvg_batch_increment(batch, S("g"), 2));
  OK(cvg_batch_increment(batch, S("g"), 3));
  OK(cvg_batch_pn_add(batch, S("pn"), -4));
  OK(cvg_batch_gset_add(batch, S("gs"), S("x")));
  OK(cvg_batch_twop_add(batch, S("tp"), S("x")));
  OK(cvg_batch_twop_remove(batch, S("tp"), S("x")));
  OK(cvg_batch_orset_add(batch, S("or"), S("x")));
  OK(cvg_batch_orset_add(batch, S("or"), S("y")));
  OK(cvg_batch_orset_remove(batch, S("or"), S("y")));
  OK(cvg_batch_orset_remove_observed(batch, S("or"), S("x"), ctx.ptr, ctx.len));
  OK(cvg_batch_lww_set(batch, S("lww"), S("v")));
  OK(cvg_batch_fww_set(batch, S("fww"), S("v")));
  OK(cvg_batch_mv_write(batch, S("mv"), S("v"), NULL, 0));
  cvg_bytes_free(&ctx);
  CHECK(cvg_batch_len(batch) == 13);
  OK(cvg_engine_write(a, batch, &deltas));
  /* The observed remove's context saw no add of "x": it removed nothing
   * and has no delta. */
  CHECK(cvg_deltas_len(deltas) == 12);
  OK(cvg_deltas_get(deltas, 0, &key, NULL));
  CHECK(slice_is(key, "g"));
  OK(cvg_deltas_get(deltas, 11, &key, &delta));
  CHECK(slice_is(key, "mv") && delta.len > 0);
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_deltas_get(deltas, 12, &key, &delta));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_deltas_get(NULL, 0, &key, &delta));
  CHECK(cvg_deltas_len(NULL) == 0);
  OK(cvg_engine_counter_value(a, S("g"), &v));
  CHECK(v == 5);

  /* The deltas, merged in a batch on the peer, reproduce the state. */
  OK(cvg_batch_clear(batch));
  CHECK(cvg_batch_len(batch) == 0);
  for (i = 0; i < cvg_deltas_len(deltas); i++) {
    OK(cvg_deltas_get(deltas, i, &key, &delta));
    OK(cvg_batch_merge(batch, key.ptr, key.len, delta.ptr, delta.len));
  }
  cvg_deltas_free(deltas);
  deltas = NULL;
  OK(cvg_engine_write(b, batch, &deltas));
  CHECK(cvg_deltas_len(deltas) == 0); /* merges produce no deltas */
  cvg_deltas_free(deltas);
  OK(cvg_engine_root(a, &ra));
  OK(cvg_engine_root(b, &rb));
  CHECK(ra.count == 8 && rb.count == 8 && memcmp(ra.hash, rb.hash, 16) == 0);
  OK(cvg_engine_state_bytes(a, S("or"), &found, &sa));
  OK(cvg_engine_state_bytes(b, S("or"), &found, &sb));
  CHECK(found && bytes_eq(sa.ptr, sa.len, sb.ptr, sb.len));
  cvg_bytes_free(&sa);
  cvg_bytes_free(&sb);

  /* All or nothing: a wrong-type operation at the end writes nothing. */
  OK(cvg_batch_clear(batch));
  OK(cvg_batch_increment(batch, S("g"), 100));
  OK(cvg_batch_increment(batch, S("fresh"), 1));
  OK(cvg_batch_gset_add(batch, S("g"), S("oops")));
  deltas = (cvg_deltas_t *)&v; /* sentinel */
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_write(a, batch, &deltas));
  CHECK(deltas == (cvg_deltas_t *)&v);
  OK(cvg_engine_counter_value(a, S("g"), &v));
  CHECK(v == 5);
  OK(cvg_engine_state_bytes(a, S("fresh"), &found, &sa));
  CHECK(!found && sa.ptr == NULL);
  /* Same for corrupt merge bytes, checked at write time. */
  OK(cvg_batch_clear(batch));
  OK(cvg_batch_increment(batch, S("g"), 100));
  OK(cvg_batch_merge(batch, S("g"), S("not a delta")));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_write(a, batch, NULL));
  OK(cvg_engine_counter_value(a, S("g"), &v));
  CHECK(v == 5);
  /* A corrupt context is refused when added; the batch is unchanged. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_batch_mv_write(batch, S("mv"), S("v"), S("junk")));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_batch_orset_remove_observed(batch, S("or"), S("x"), S("junk")));
  CHECK(cvg_batch_len(batch) == 2);

  /* A large batch: 5000 increments on 50 keys, deltas discarded. */
  OK(cvg_batch_clear(batch));
  for (i = 0; i < 5000; i++) {
    int n = snprintf(k, sizeof k, "many/%02u", (unsigned)(i % 50));
    OK(cvg_batch_increment(batch, (const uint8_t *)k, (size_t)n, 1));
  }
  OK(cvg_engine_write(a, batch, NULL));
  OK(cvg_engine_counter_value(a, S("many/07"), &v));
  CHECK(v == 100);
  /* ... and with deltas: one per operation. */
  OK(cvg_engine_write(a, batch, &deltas));
  CHECK(cvg_deltas_len(deltas) == 5000);
  OK(cvg_deltas_get(deltas, 4999, &key, &delta));
  CHECK(slice_is(key, "many/49"));
  cvg_deltas_free(deltas);

  /* Empty batch: nothing to do. */
  OK(cvg_batch_clear(batch));
  OK(cvg_engine_write(a, batch, &deltas));
  CHECK(cvg_deltas_len(deltas) == 0);
  cvg_deltas_free(deltas);
  cvg_deltas_free(NULL);

  /* NULL handles. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_write(NULL, batch, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_write(a, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_clear(NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_increment(NULL, S("g"), 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_pn_add(NULL, S("g"), 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_gset_add(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_twop_add(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_twop_remove(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_orset_add(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_orset_remove(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_batch_orset_remove_observed(NULL, S("g"), S("x"), NULL, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_lww_set(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_fww_set(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_mv_write(NULL, S("g"), S("x"), NULL, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_merge(NULL, S("g"), S("x")));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_increment(batch, NULL, 3, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_gset_add(batch, S("g"), NULL, 2));
  CHECK(cvg_batch_len(batch) == 0);
  cvg_batch_free(batch);
  cvg_batch_free(NULL);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}
