/* Bad input: NULL handles and pointers, oversized keys and values, wrong
 * types, truncated and damaged bytes, freeing NULL. Each gets its
 * documented status and changes nothing. */
#include "util.h"

static void expect_root(const cvg_engine_t *e, const cvg_root_t *before) {
  cvg_root_t now;
  OK(cvg_engine_root(e, &now));
  CHECK(now.count == before->count && memcmp(now.hash, before->hash, 16) == 0);
}

/* Every engine function refuses a NULL engine. */
static void null_engine(void) {
  cvg_bytes_t b = {NULL, 0};
  cvg_list_t *l = NULL;
  cvg_siblings_t *s = NULL;
  cvg_iter_t *it = NULL;
  cvg_root_t r;
  cvg_stamp_t st;
  cvg_i128_t w;
  uint8_t id[16];
  int64_t v;
  bool f;
  size_t n;
  uint64_t k;
  cvg_crdt_type_t t;
  const cvg_engine_t *e = NULL;
  const cvg_status_t NP = CVG_STATUS_NULL_POINTER;
  EXPECT_ERR(NP, cvg_engine_replica_id(e, id));
  EXPECT_ERR(NP, cvg_engine_version_vector(e, &b));
  EXPECT_ERR(NP, cvg_engine_key_type(e, S("k"), &t));
  EXPECT_ERR(NP, cvg_engine_state_bytes(e, S("k"), &f, &b));
  EXPECT_ERR(NP, cvg_engine_merge(e, S("k"), S("x")));
  EXPECT_ERR(NP, cvg_engine_settle(e, &n));
  EXPECT_ERR(NP, cvg_engine_root(e, &r));
  EXPECT_ERR(NP, cvg_engine_verify(e, &f, &k));
  EXPECT_ERR(NP, cvg_engine_flush(e));
  EXPECT_ERR(NP, cvg_engine_sync_wal(e));
  EXPECT_ERR(NP, cvg_engine_increment(e, S("k"), 1, &b));
  EXPECT_ERR(NP, cvg_engine_pn_add(e, S("k"), 1, &b));
  EXPECT_ERR(NP, cvg_engine_gset_add(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_twop_add(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_twop_remove(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_orset_add(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_orset_remove(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_orset_remove_observed(e, S("k"), S("x"), NULL, 0, &b));
  EXPECT_ERR(NP, cvg_engine_lww_set(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_fww_set(e, S("k"), S("x"), &b));
  EXPECT_ERR(NP, cvg_engine_mv_write(e, S("k"), S("x"), NULL, 0, &b));
  EXPECT_ERR(NP, cvg_engine_counter_value(e, S("k"), &v));
  EXPECT_ERR(NP, cvg_engine_counter_value_wide(e, S("k"), &w));
  EXPECT_ERR(NP, cvg_engine_set_members(e, S("k"), &l, &b));
  EXPECT_ERR(NP, cvg_engine_register(e, S("k"), &f, &b, &st));
  EXPECT_ERR(NP, cvg_engine_mv_read(e, S("k"), &s, &b));
  EXPECT_ERR(NP, cvg_engine_keys(e, NULL, 0, &it));
  CHECK(b.ptr == NULL && l == NULL && s == NULL && it == NULL);
}

/* Every prefix of `bytes` is refused as a merge into `key`; so is every
 * single-bit flip (the version byte included), and one trailing byte. */
static void damaged_bytes(const cvg_engine_t *e, const char *key,
                          const cvg_bytes_t *good) {
  uint8_t buf[512];
  size_t i, klen = strlen(key);
  const uint8_t *k = (const uint8_t *)key;
  cvg_root_t before;
  CHECK(good->len <= sizeof buf);
  OK(cvg_engine_root(e, &before));
  for (i = 0; i < good->len; i++)
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(e, k, klen, good->ptr, i));
  for (i = 0; i < good->len; i++) {
    memcpy(buf, good->ptr, good->len);
    buf[i] ^= 0x04;
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(e, k, klen, buf, good->len));
  }
  /* One byte too many. */
  memcpy(buf, good->ptr, good->len);
  buf[good->len] = 0;
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(e, k, klen, buf, good->len + 1));
  expect_root(e, &before);
}

void test_bad_input(const char *base) {
  cvg_engine_t *e = open_engine(base, "bad", 7);
  cvg_engine_t *peer = open_engine(base, "bad-peer", 8);
  cvg_bytes_t d = {NULL, 0}, ctx = {NULL, 0}, sentinel, out;
  cvg_list_t *list = NULL;
  cvg_siblings_t *sibs = NULL;
  cvg_root_t before;
  bool found = true;
  uint8_t *big;
  size_t i;
  const size_t max_key = CVG_MAX_KEY_LEN, max_value = CVG_MAX_VALUE_LEN;

  null_engine();

  /* NULL pointers with a length; (NULL, 0) is the empty key. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_increment(e, NULL, 1, 1, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_gset_add(e, S("k"), NULL, 1, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_merge(e, S("k"), NULL, 5));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_mv_write(e, S("k"), S("v"), NULL, 3, NULL));
  OK(cvg_engine_increment(e, NULL, 0, 1, NULL));
  {
    int64_t v = 0;
    OK(cvg_engine_counter_value(e, NULL, 0, &v));
    CHECK(v == 1);
  }

  /* Sizes: the largest key and value pass, one byte more is refused. */
  big = (uint8_t *)calloc(max_value + 1, 1);
  CHECK(big != NULL);
  memset(big, 'k', max_key + 1);
  OK(cvg_engine_increment(e, big, max_key, 1, NULL));
  EXPECT_ERR(CVG_STATUS_KEY_TOO_LARGE, cvg_engine_increment(e, big, max_key + 1, 1, NULL));
  EXPECT_ERR(CVG_STATUS_KEY_TOO_LARGE, cvg_engine_merge(e, big, max_key + 1, S("x")));
  EXPECT_ERR(CVG_STATUS_VALUE_TOO_LARGE,
             cvg_engine_lww_set(e, S("big"), big, max_value + 1, NULL));
  EXPECT_ERR(CVG_STATUS_VALUE_TOO_LARGE,
             cvg_engine_orset_add(e, S("big"), big, max_value + 1, NULL));
  OK(cvg_engine_state_bytes(e, S("big"), &found, &d));
  CHECK(!found && d.ptr == NULL);

  /* The state limit: three 16 MiB elements fit in a G-Set, a fourth would
   * take it past CVG_MAX_STATE_LEN and changes nothing. */
  CHECK(CVG_MAX_STATE_LEN == (size_t)64 << 20);
  CHECK(CVG_MAX_MESSAGE_LEN > CVG_MAX_STATE_LEN + CVG_MAX_KEY_LEN);
  for (i = 0; i < 3; i++) {
    memset(big, 'a' + (int)i, max_value);
    OK(cvg_engine_gset_add(e, S("huge"), big, max_value, NULL));
  }
  OK(cvg_engine_root(e, &before));
  memset(big, 'z', max_value);
  out.ptr = NULL;
  out.len = 0;
  EXPECT_ERR(CVG_STATUS_STATE_TOO_LARGE, cvg_engine_gset_add(e, S("huge"), big, max_value, &out));
  CHECK(out.ptr == NULL);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_STATE_TOO_LARGE), "CVG_STATUS_STATE_TOO_LARGE") == 0);
  expect_root(e, &before);
  free(big);

  /* Damaged deltas and states: never applied. */
  OK(cvg_engine_orset_add(peer, S("set"), S("a"), &d));
  OK(cvg_engine_orset_add(e, S("set"), S("b"), NULL));
  damaged_bytes(e, "set", &d);
  cvg_bytes_free(&d);
  OK(cvg_engine_state_bytes(peer, S("set"), &found, &d));
  CHECK(found);
  damaged_bytes(e, "set", &d);
  /* Valid bytes of another type: WRONG_TYPE, nothing changed. */
  OK(cvg_engine_root(e, &before));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_merge(e, NULL, 0, d.ptr, d.len));
  expect_root(e, &before);
  cvg_bytes_free(&d);
  /* A context is no delta. */
  OK(cvg_engine_set_members(e, S("set"), &list, &ctx));
  cvg_list_free(list);
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(e, S("set"), ctx.ptr, ctx.len));
  /* A delta is no context; damaged contexts are refused too. */
  OK(cvg_engine_increment(peer, S("n"), 1, &d));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_engine_orset_remove_observed(e, S("set"), S("b"), d.ptr, d.len, NULL));
  cvg_bytes_free(&d);
  for (i = 1; i < ctx.len; i++) {
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
               cvg_engine_orset_remove_observed(e, S("set"), S("b"), ctx.ptr, i, NULL));
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
               cvg_engine_mv_write(e, S("mv"), S("v"), ctx.ptr, i, NULL));
  }
  ctx.ptr[ctx.len - 1] ^= 1;
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_engine_orset_remove_observed(e, S("set"), S("b"), ctx.ptr, ctx.len, NULL));
  ctx.ptr[ctx.len - 1] ^= 1;
  OK(cvg_engine_orset_remove_observed(e, S("set"), S("b"), ctx.ptr, ctx.len, NULL));
  cvg_bytes_free(&ctx);
  {
    cvg_crdt_type_t t = 0;
    OK(cvg_engine_key_type(e, S("mv"), &t));
    CHECK(t == CVG_CRDT_NONE); /* no failed write created it */
  }

  /* A failed call leaves a given output untouched. */
  sentinel.ptr = (uint8_t *)&sentinel;
  sentinel.len = 77;
  out = sentinel;
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_increment(e, S("set"), 1, &out));
  CHECK(out.ptr == sentinel.ptr && out.len == 77);
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_mv_read(e, S("set"), &sibs, &out));
  CHECK(sibs == NULL);
  CHECK(out.ptr == sentinel.ptr && out.len == 77);

  /* Freeing NULL (and a reset cvg_bytes_t) is a no-op everywhere. */
  cvg_bytes_free(NULL);
  out.ptr = NULL;
  out.len = 0;
  cvg_bytes_free(&out);
  cvg_list_free(NULL);
  cvg_siblings_free(NULL);
  cvg_deltas_free(NULL);
  cvg_batch_free(NULL);
  cvg_iter_free(NULL);
  cvg_options_free(NULL);
  OK(cvg_engine_close(NULL));
  OK(cvg_engine_close(peer));
  OK(cvg_engine_close(e));
}
