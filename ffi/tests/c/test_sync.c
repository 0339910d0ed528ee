/* Key iteration, two replicas converging (through deltas and through full
 * states), anti-entropy and maintenance calls, and threads. */
#include "util.h"

#include <pthread.h>

/* Every CRDT type on one replica; deltas appended to `out` (n entries). */
static void write_everything(const cvg_engine_t *e, const char *tag,
                             cvg_bytes_t *out, size_t *n) {
  size_t len = strlen(tag);
  const uint8_t *t = (const uint8_t *)tag;
  OK(cvg_engine_increment(e, S("g"), 2, &out[(*n)++]));
  OK(cvg_engine_pn_add(e, S("pn"), -3, &out[(*n)++]));
  OK(cvg_engine_gset_add(e, S("gs"), t, len, &out[(*n)++]));
  OK(cvg_engine_twop_add(e, S("tp"), t, len, &out[(*n)++]));
  OK(cvg_engine_twop_remove(e, S("tp"), S("a"), &out[(*n)++]));
  OK(cvg_engine_orset_add(e, S("or"), t, len, &out[(*n)++]));
  /* Removes its own add (a remove of a non-member has no delta). */
  OK(cvg_engine_orset_remove(e, S("or"), t, len, &out[(*n)++]));
  CHECK(out[*n - 1].len > 0);
  OK(cvg_engine_lww_set(e, S("lww"), t, len, &out[(*n)++]));
  OK(cvg_engine_fww_set(e, S("fww"), t, len, &out[(*n)++]));
  OK(cvg_engine_mv_write(e, S("mv"), t, len, NULL, 0, &out[(*n)++]));
}

static void expect_same_state(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_iter_t *it = NULL;
  cvg_root_t ra, rb;
  bool has = true, consistent = false;
  uint64_t keys = 0;
  OK(cvg_engine_root(a, &ra));
  OK(cvg_engine_root(b, &rb));
  CHECK(ra.count == rb.count && memcmp(ra.hash, rb.hash, 16) == 0);
  OK(cvg_engine_verify(a, &consistent, &keys));
  CHECK(consistent && keys == ra.count);
  OK(cvg_engine_verify(b, &consistent, NULL));
  CHECK(consistent);
  /* Byte-equal states, key by key. */
  OK(cvg_engine_keys(a, NULL, 0, &it));
  for (;;) {
    cvg_slice_t key;
    cvg_bytes_t sa = {NULL, 0}, sb = {NULL, 0};
    bool fa = false, fb = false;
    OK(cvg_iter_next(it, &has, &key, NULL));
    if (!has)
      break;
    OK(cvg_engine_state_bytes(a, key.ptr, key.len, &fa, &sa));
    OK(cvg_engine_state_bytes(b, key.ptr, key.len, &fb, &sb));
    CHECK(fa && fb && bytes_eq(sa.ptr, sa.len, sb.ptr, sb.len));
    cvg_bytes_free(&sa);
    cvg_bytes_free(&sb);
  }
  cvg_iter_free(it);
}

/* Merge the full state of every key of `from` into `to`. */
static void send_all_states(const cvg_engine_t *from, const cvg_engine_t *to) {
  cvg_iter_t *it = NULL;
  bool has = true;
  OK(cvg_engine_keys(from, NULL, 0, &it));
  for (;;) {
    cvg_slice_t key;
    cvg_bytes_t s = {NULL, 0};
    bool found = false;
    OK(cvg_iter_next(it, &has, &key, NULL));
    if (!has)
      break;
    OK(cvg_engine_state_bytes(from, key.ptr, key.len, &found, &s));
    CHECK(found);
    OK(cvg_engine_merge(to, key.ptr, key.len, s.ptr, s.len));
    cvg_bytes_free(&s);
  }
  cvg_iter_free(it);
}

void test_iteration(const char *base) {
  char path[1024];
  cvg_engine_t *e = open_engine(base, "iter", 5);
  cvg_iter_t *it = NULL;
  cvg_slice_t key;
  cvg_crdt_type_t t = 99;
  bool has = false;

  OK(cvg_engine_increment(e, S("user/2"), 1, NULL));
  OK(cvg_engine_orset_add(e, S("user/1"), S("x"), NULL));
  OK(cvg_engine_lww_set(e, S("item/1"), S("x"), NULL));
  OK(cvg_engine_keys(e, S("user/"), &it));
  OK(cvg_iter_next(it, &has, &key, &t));
  CHECK(has && slice_is(key, "user/1") && t == CVG_CRDT_ORSET);
  OK(cvg_iter_next(it, &has, &key, &t));
  CHECK(has && slice_is(key, "user/2") && t == CVG_CRDT_GCOUNTER);
  OK(cvg_iter_next(it, &has, &key, &t));
  CHECK(!has && key.ptr == NULL && key.len == 0 && t == CVG_CRDT_NONE);
  OK(cvg_iter_next(it, &has, NULL, NULL)); /* stays at the end */
  CHECK(!has);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_iter_next(it, NULL, &key, &t));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_iter_next(NULL, &has, &key, &t));
  cvg_iter_free(it);
  OK(cvg_engine_keys(e, S("zzz"), &it));
  OK(cvg_iter_next(it, &has, &key, &t));
  CHECK(!has);
  cvg_iter_free(it);
  cvg_iter_free(NULL);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_keys(e, NULL, 0, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_keys(NULL, NULL, 0, &it));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_keys(e, NULL, 4, &it));

  /* Closing with an open iterator: reported, and the iterator stays valid
   * (over its snapshot) until freed, which closes the store. */
  OK(cvg_engine_keys(e, NULL, 0, &it));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_close(e));
  OK(cvg_iter_next(it, &has, &key, &t));
  CHECK(has && slice_is(key, "item/1") && t == CVG_CRDT_LWW_REGISTER);
  cvg_iter_free(it);
  snprintf(path, sizeof path, "%s/iter", base);
  OK(cvg_engine_open(path, NULL, &e));
  OK(cvg_engine_close(e));
}

void test_convergence(const char *base) {
  cvg_engine_t *a = open_engine(base, "conv-a", 0x2A);
  cvg_engine_t *b = open_engine(base, "conv-b", 0x2B);
  cvg_engine_t *c = open_engine(base, "conv-c", 0x2C);
  cvg_bytes_t da[10], db[10], vva = {NULL, 0}, vvb = {NULL, 0};
  cvg_siblings_t *sib = NULL;
  cvg_bytes_t v = {NULL, 0};
  size_t na = 0, nb = 0, i, folded = 0;
  int64_t n = 0;
  bool found = false;

  /* A partition: both replicas write every type, concurrently. */
  write_everything(a, "a", da, &na);
  write_everything(b, "b", db, &nb);
  CHECK(na == 10 && nb == 10);
  /* Empty bytes never decode. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(a, S("g"), NULL, 0));
  /* Heal the partition with the deltas, in opposite orders, twice. */
  {
    static const char *keys[10] = {"g", "pn", "gs", "tp", "tp",
                                   "or", "or", "lww", "fww", "mv"};
    for (i = 0; i < 10; i++) {
      const char *k = keys[i];
      const char *r = keys[9 - i];
      OK(cvg_engine_merge(a, (const uint8_t *)k, strlen(k), db[i].ptr, db[i].len));
      OK(cvg_engine_merge(b, (const uint8_t *)r, strlen(r), da[9 - i].ptr,
                          da[9 - i].len));
    }
    for (i = 0; i < 10; i++) { /* duplicates are harmless */
      OK(cvg_engine_merge(a, (const uint8_t *)keys[i], strlen(keys[i]),
                          db[i].ptr, db[i].len));
      cvg_bytes_free(&da[i]);
      cvg_bytes_free(&db[i]);
    }
  }
  expect_same_state(a, b);
  OK(cvg_engine_counter_value(a, S("g"), &n));
  CHECK(n == 4);
  OK(cvg_engine_counter_value(b, S("pn"), &n));
  CHECK(n == -6);
  OK(cvg_engine_mv_read(b, S("mv"), &sib, NULL));
  CHECK(cvg_siblings_len(sib) == 2);
  cvg_siblings_free(sib);
  OK(cvg_engine_register(a, S("fww"), &found, &v, NULL));
  CHECK(found && v.len == 1);
  cvg_bytes_free(&v);
  /* Both have seen the same operations. */
  OK(cvg_engine_version_vector(a, &vva));
  OK(cvg_engine_version_vector(b, &vvb));
  CHECK(vva.len > 0 && bytes_eq(vva.ptr, vva.len, vvb.ptr, vvb.len));
  cvg_bytes_free(&vva);
  cvg_bytes_free(&vvb);

  /* A third replica catches up from full states, then writes on its own;
   * exchanging states both ways converges everyone. */
  send_all_states(a, c);
  OK(cvg_engine_increment(c, S("g"), 10, NULL));
  OK(cvg_engine_orset_add(c, S("c-only"), S("z"), NULL));
  /* The background thread may fold some of them first: settle folds the
   * rest, after which nothing is left. */
  size_t unsettled = 99;
  OK(cvg_engine_settle(c, &folded));
  OK(cvg_engine_unsettled_keys(c, &unsettled));
  CHECK(unsettled == 0);
  OK(cvg_engine_settle(c, &folded));
  CHECK(folded == 0);
  OK(cvg_engine_settle(c, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_unsettled_keys(c, NULL));
  send_all_states(c, a);
  send_all_states(a, b);
  expect_same_state(a, c);
  expect_same_state(b, c);
  OK(cvg_engine_counter_value(b, S("g"), &n));
  CHECK(n == 14);

  /* Maintenance calls. */
  OK(cvg_engine_flush(a));
  OK(cvg_engine_sync_wal(a));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_version_vector(a, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_root(a, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_verify(a, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_key_type(a, S("g"), NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_state_bytes(a, S("g"), NULL, &v));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_state_bytes(a, S("g"), &found, NULL));
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(c));
}

struct worker {
  const cvg_engine_t *engine;
  int id;
  int failures;
};

/* Kept small: read-modify-write operations on one hot key re-join every
 * merge operand RocksDB holds for it, which a debug build feels. */
#define THREAD_INCREMENTS 100
#define THREAD_ADDS 25

static void *work(void *arg) {
  struct worker *w = (struct worker *)arg;
  char msg[64];
  int i;
  for (i = 0; i < THREAD_INCREMENTS; i++) {
    if (cvg_engine_increment(w->engine, S("shared"), 1, NULL) != CVG_STATUS_OK)
      w->failures++;
  }
  for (i = 0; i < THREAD_ADDS; i++) {
    int elem = w->id * 1000 + i;
    if (cvg_engine_orset_add(w->engine, S("members"), (const uint8_t *)&elem,
                             sizeof elem, NULL) != CVG_STATUS_OK)
      w->failures++;
  }
  /* This thread's error message is its own. */
  if (cvg_engine_flush(NULL) != CVG_STATUS_NULL_POINTER)
    w->failures++;
  cvg_last_error_message(msg, sizeof msg);
  if (strcmp(msg, "engine is NULL") != 0)
    w->failures++;
  return NULL;
}

/* Several threads apply the same batch (taken `const`) and read the same
 * deltas at once, as the header allows. */
struct batch_writer {
  const cvg_engine_t *engine;
  const cvg_batch_t *batch;
  const cvg_deltas_t *deltas;
  int failures;
};

#define BATCH_WRITES 10

static void *write_shared_batch(void *arg) {
  struct batch_writer *w = (struct batch_writer *)arg;
  int i;
  for (i = 0; i < BATCH_WRITES; i++) {
    cvg_deltas_t *mine = NULL;
    cvg_slice_t key;
    if (cvg_batch_len(w->batch) != 3)
      w->failures++;
    if (cvg_engine_write(w->engine, w->batch, &mine) != CVG_STATUS_OK ||
        cvg_deltas_len(mine) != 3)
      w->failures++;
    cvg_deltas_free(mine);
    if (cvg_deltas_get(w->deltas, 2, &key, NULL) != CVG_STATUS_OK ||
        !slice_is(key, "batch/set"))
      w->failures++;
  }
  return NULL;
}

static void test_shared_batch(const cvg_engine_t *e) {
  cvg_batch_t *batch = cvg_batch_new();
  cvg_deltas_t *deltas = NULL;
  struct batch_writer w[4];
  pthread_t th[4];
  cvg_list_t *list = NULL;
  int64_t v = 0;
  int i;

  OK(cvg_batch_increment(batch, S("batch/count"), 1));
  OK(cvg_batch_pn_add(batch, S("batch/pn"), -1));
  OK(cvg_batch_orset_add(batch, S("batch/set"), S("x")));
  OK(cvg_engine_write(e, batch, &deltas));
  for (i = 0; i < 4; i++) {
    w[i].engine = e;
    w[i].batch = batch;
    w[i].deltas = deltas;
    w[i].failures = 0;
    CHECK(pthread_create(&th[i], NULL, write_shared_batch, &w[i]) == 0);
  }
  for (i = 0; i < 4; i++) {
    CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(w[i].failures == 0);
  }
  cvg_deltas_free(deltas);
  cvg_batch_free(batch);
  OK(cvg_engine_counter_value(e, S("batch/count"), &v));
  CHECK(v == 1 + 4 * BATCH_WRITES);
  OK(cvg_engine_counter_value(e, S("batch/pn"), &v));
  CHECK(v == -(1 + 4 * BATCH_WRITES));
  OK(cvg_engine_set_members(e, S("batch/set"), &list, NULL));
  CHECK(cvg_list_len(list) == 1);
  cvg_list_free(list);
}

void test_threads(const char *base) {
  cvg_engine_t *e = open_engine(base, "threads", 6);
  struct worker w[4];
  pthread_t th[4];
  char msg[128];
  int64_t v = 0;
  cvg_list_t *list = NULL;
  int i;

  /* The main thread's last error survives the workers' calls. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_counter_value(e, S("shared"), NULL));
  for (i = 0; i < 4; i++) {
    w[i].engine = e;
    w[i].id = i;
    w[i].failures = 0;
    CHECK(pthread_create(&th[i], NULL, work, &w[i]) == 0);
  }
  for (i = 0; i < 4; i++) {
    CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(w[i].failures == 0);
  }
  cvg_last_error_message(msg, sizeof msg);
  CHECK(strcmp(msg, "value_out is NULL") == 0);
  OK(cvg_engine_counter_value(e, S("shared"), &v));
  CHECK(v == 4 * THREAD_INCREMENTS);
  OK(cvg_engine_set_members(e, S("members"), &list, NULL));
  CHECK(cvg_list_len(list) == 4 * THREAD_ADDS);
  cvg_list_free(list);
  test_shared_batch(e);
  OK(cvg_engine_close(e));
}
