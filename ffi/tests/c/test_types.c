/* Every CRDT type through the single-operation calls and the typed reads. */
#include "util.h"

#include <stdint.h>

static int64_t counter(const cvg_engine_t *e, const char *key) {
  int64_t v = -12345;
  OK(cvg_engine_counter_value(e, (const uint8_t *)key, strlen(key), &v));
  return v;
}

void test_counters(const char *base) {
  cvg_engine_t *e = open_engine(base, "counters", 1);
  cvg_bytes_t d = {NULL, 0};
  cvg_i128_t wide;
  int64_t v = 99;
  cvg_crdt_type_t t = 0;

  /* Never written: 0, type none. */
  CHECK(counter(e, "g") == 0);
  OK(cvg_engine_key_type(e, S("g"), &t));
  CHECK(t == CVG_CRDT_NONE);

  /* G-Counter with and without the delta. */
  OK(cvg_engine_increment(e, S("g"), 5, &d));
  CHECK(d.ptr != NULL && d.len > 0);
  cvg_bytes_free(&d);
  CHECK(d.ptr == NULL && d.len == 0);
  cvg_bytes_free(&d); /* second free of a reset value: no-op */
  OK(cvg_engine_increment(e, S("g"), 3, NULL));
  CHECK(counter(e, "g") == 8);
  OK(cvg_engine_key_type(e, S("g"), &t));
  CHECK(t == CVG_CRDT_GCOUNTER);

  /* PN-Counter goes negative. */
  OK(cvg_engine_pn_add(e, S("pn"), 10, NULL));
  OK(cvg_engine_pn_add(e, S("pn"), -25, &d));
  cvg_bytes_free(&d);
  CHECK(counter(e, "pn") == -15);
  OK(cvg_engine_counter_value_wide(e, S("pn"), &wide));
  CHECK(wide.hi == -1 && wide.lo == (uint64_t)-15);
  OK(cvg_engine_key_type(e, S("pn"), &t));
  CHECK(t == CVG_CRDT_PNCOUNTER);

  /* A G-Counter above INT64_MAX: int64 read overflows, wide read works,
   * and an increment past 2^64-1 is refused without change. */
  OK(cvg_engine_increment(e, S("big"), UINT64_MAX, NULL));
  v = 99;
  EXPECT_ERR(CVG_STATUS_OVERFLOW, cvg_engine_counter_value(e, S("big"), &v));
  CHECK(v == 99);
  OK(cvg_engine_counter_value_wide(e, S("big"), &wide));
  CHECK(wide.hi == 0 && wide.lo == UINT64_MAX);
  d.ptr = (uint8_t *)&v; /* sentinel: must stay untouched */
  EXPECT_ERR(CVG_STATUS_OVERFLOW, cvg_engine_increment(e, S("big"), 1, &d));
  CHECK(d.ptr == (uint8_t *)&v);
  d.ptr = NULL;
  OK(cvg_engine_counter_value_wide(e, S("big"), &wide));
  CHECK(wide.hi == 0 && wide.lo == UINT64_MAX);

  /* Wrong type: refused, nothing changed. */
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_pn_add(e, S("g"), 1, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_gset_add(e, S("g"), S("x"), NULL));
  CHECK(counter(e, "g") == 8);
  OK(cvg_engine_gset_add(e, S("set"), S("x"), NULL));
  v = 42;
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_counter_value(e, S("set"), &v));
  CHECK(v == 42);
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_counter_value_wide(e, S("set"), &wide));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_counter_value(e, S("g"), NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_counter_value_wide(e, S("g"), NULL));
  OK(cvg_engine_close(e));
}

/* Members of `key` joined with ',' into buf. */
static void members(const cvg_engine_t *e, const char *key, char *buf, size_t n) {
  cvg_list_t *list = NULL;
  size_t i, at = 0;
  OK(cvg_engine_set_members(e, (const uint8_t *)key, strlen(key), &list, NULL));
  buf[0] = '\0';
  for (i = 0; i < cvg_list_len(list); i++) {
    cvg_slice_t s;
    OK(cvg_list_get(list, i, &s));
    CHECK(at + s.len + 2 < n);
    if (i > 0)
      buf[at++] = ',';
    if (s.len > 0)
      memcpy(buf + at, s.ptr, s.len);
    at += s.len;
    buf[at] = '\0';
  }
  cvg_list_free(list);
}

void test_sets(const char *base) {
  cvg_engine_t *e = open_engine(base, "sets", 2);
  cvg_engine_t *peer = open_engine(base, "sets-peer", 3);
  cvg_bytes_t d = {NULL, 0}, ctx = {NULL, 0}, late = {NULL, 0};
  cvg_list_t *list = NULL;
  cvg_slice_t s;
  cvg_crdt_type_t t;
  char buf[256];

  /* Never written: empty. */
  members(e, "gs", buf, sizeof buf);
  CHECK(strcmp(buf, "") == 0);

  /* G-Set: byte order, duplicates collapse. */
  OK(cvg_engine_gset_add(e, S("gs"), S("b"), NULL));
  OK(cvg_engine_gset_add(e, S("gs"), S("a"), &d));
  OK(cvg_engine_gset_add(e, S("gs"), S("b"), NULL));
  cvg_bytes_free(&d);
  members(e, "gs", buf, sizeof buf);
  CHECK(strcmp(buf, "a,b") == 0);
  OK(cvg_engine_key_type(e, S("gs"), &t));
  CHECK(t == CVG_CRDT_GSET);

  /* 2P-Set: a removed element never comes back. */
  OK(cvg_engine_twop_add(e, S("tp"), S("x"), NULL));
  OK(cvg_engine_twop_add(e, S("tp"), S("y"), NULL));
  OK(cvg_engine_twop_remove(e, S("tp"), S("x"), &d));
  cvg_bytes_free(&d);
  OK(cvg_engine_twop_add(e, S("tp"), S("x"), NULL));
  members(e, "tp", buf, sizeof buf);
  CHECK(strcmp(buf, "y") == 0);
  OK(cvg_engine_key_type(e, S("tp"), &t));
  CHECK(t == CVG_CRDT_TWOP_SET);

  /* OR-Set: remove of everything observed. An empty element is allowed. */
  OK(cvg_engine_orset_add(e, S("or"), S("milk"), NULL));
  OK(cvg_engine_orset_add(e, S("or"), S("eggs"), &d));
  cvg_bytes_free(&d);
  OK(cvg_engine_orset_add(e, S("or"), NULL, 0, NULL));
  OK(cvg_engine_orset_remove(e, S("or"), S("milk"), &d));
  cvg_bytes_free(&d);
  members(e, "or", buf, sizeof buf);
  CHECK(strcmp(buf, ",eggs") == 0);
  OK(cvg_engine_orset_remove(e, S("or"), NULL, 0, NULL));
  /* A remove that removes nothing is no operation: no delta, no key. */
  d.len = 99; /* overwritten on success */
  OK(cvg_engine_orset_remove(e, S("or"), S("milk"), &d));
  CHECK(d.ptr == NULL && d.len == 0);
  OK(cvg_engine_orset_remove(e, S("never"), S("milk"), &d));
  CHECK(d.ptr == NULL && d.len == 0);
  {
    cvg_crdt_type_t none_t;
    OK(cvg_engine_key_type(e, S("never"), &none_t));
    CHECK(none_t == CVG_CRDT_NONE);
  }

  /* Observed remove: an add the read did not see survives. */
  OK(cvg_engine_orset_add(e, S("or"), S("tea"), NULL));
  OK(cvg_engine_set_members(e, S("or"), &list, &ctx));
  CHECK(cvg_list_len(list) == 2);
  OK(cvg_list_get(list, 1, &s));
  CHECK(slice_is(s, "tea"));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_list_get(list, 2, &s));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_list_get(list, 0, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_list_get(NULL, 0, &s));
  CHECK(cvg_list_len(NULL) == 0);
  cvg_list_free(list);
  CHECK(ctx.len > 0);
  /* A concurrent add of "tea" on the peer, merged in after the read. */
  OK(cvg_engine_orset_add(peer, S("or"), S("tea"), &late));
  OK(cvg_engine_merge(e, S("or"), late.ptr, late.len));
  cvg_bytes_free(&late);
  OK(cvg_engine_orset_remove_observed(e, S("or"), S("tea"), ctx.ptr, ctx.len, &d));
  cvg_bytes_free(&d);
  members(e, "or", buf, sizeof buf);
  CHECK(strcmp(buf, "eggs,tea") == 0); /* the peer's add wins */
  /* With a fresh context the remove takes it. */
  cvg_bytes_free(&ctx);
  OK(cvg_engine_set_members(e, S("or"), &list, &ctx));
  cvg_list_free(list);
  OK(cvg_engine_orset_remove_observed(e, S("or"), S("tea"), ctx.ptr, ctx.len, NULL));
  members(e, "or", buf, sizeof buf);
  CHECK(strcmp(buf, "eggs") == 0);
  /* The empty context removes nothing. */
  OK(cvg_engine_orset_remove_observed(e, S("or"), S("eggs"), NULL, 0, NULL));
  members(e, "or", buf, sizeof buf);
  CHECK(strcmp(buf, "eggs") == 0);
  cvg_bytes_free(&ctx);
  OK(cvg_engine_key_type(e, S("or"), &t));
  CHECK(t == CVG_CRDT_ORSET);

  /* Wrong types. */
  list = NULL;
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_orset_add(e, S("gs"), S("z"), NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_twop_remove(e, S("or"), S("z"), NULL));
  OK(cvg_engine_increment(e, S("n"), 1, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_set_members(e, S("n"), &list, &ctx));
  CHECK(list == NULL && ctx.ptr == NULL);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_set_members(e, S("gs"), NULL, &ctx));
  OK(cvg_engine_close(peer));
  OK(cvg_engine_close(e));
}

void test_registers(const char *base) {
  cvg_engine_t *e = open_engine(base, "registers", 4);
  cvg_bytes_t v = {NULL, 0}, d = {NULL, 0};
  cvg_stamp_t stamp, first;
  uint8_t id[16];
  bool found = true;
  cvg_crdt_type_t t;

  OK(cvg_engine_replica_id(e, id));
  /* Never written. */
  OK(cvg_engine_register(e, S("lww"), &found, &v, &stamp));
  CHECK(!found && v.ptr == NULL && v.len == 0 && stamp.wall_ms == 0);

  /* LWW: the latest write wins; stamps increase. */
  OK(cvg_engine_lww_set(e, S("lww"), S("one"), &d));
  cvg_bytes_free(&d);
  OK(cvg_engine_register(e, S("lww"), &found, NULL, &first));
  CHECK(found && first.wall_ms > 0 && memcmp(first.replica, id, 16) == 0);
  OK(cvg_engine_lww_set(e, S("lww"), S("two"), NULL));
  OK(cvg_engine_register(e, S("lww"), &found, &v, &stamp));
  CHECK(found && bytes_eq(v.ptr, v.len, S("two")));
  CHECK(stamp.wall_ms > first.wall_ms ||
        (stamp.wall_ms == first.wall_ms && stamp.logical > first.logical));
  cvg_bytes_free(&v);
  OK(cvg_engine_register(e, S("lww"), &found, NULL, NULL));
  CHECK(found);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_register(e, S("lww"), NULL, &v, NULL));
  OK(cvg_engine_key_type(e, S("lww"), &t));
  CHECK(t == CVG_CRDT_LWW_REGISTER);

  /* FWW: the first write stays. */
  OK(cvg_engine_fww_set(e, S("fww"), S("first"), &d));
  cvg_bytes_free(&d);
  OK(cvg_engine_fww_set(e, S("fww"), S("second"), NULL));
  OK(cvg_engine_register(e, S("fww"), &found, &v, NULL));
  CHECK(found && bytes_eq(v.ptr, v.len, S("first")));
  cvg_bytes_free(&v);
  OK(cvg_engine_key_type(e, S("fww"), &t));
  CHECK(t == CVG_CRDT_FWW_REGISTER);

  /* An empty value is a value. */
  OK(cvg_engine_lww_set(e, S("empty"), NULL, 0, NULL));
  OK(cvg_engine_register(e, S("empty"), &found, &v, NULL));
  CHECK(found && v.len == 0 && v.ptr == NULL);

  /* Wrong types. */
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_fww_set(e, S("lww"), S("x"), NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_lww_set(e, S("fww"), S("x"), NULL));
  OK(cvg_engine_increment(e, S("n"), 1, NULL));
  found = true;
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_register(e, S("n"), &found, &v, NULL));
  CHECK(found); /* untouched */
  OK(cvg_engine_close(e));
}
