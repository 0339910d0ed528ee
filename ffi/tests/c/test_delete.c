/* Deletes and the collection of tombstones: the cart across two replicas,
 * absent versus empty, deletes based on an earlier read, "nothing to
 * delete", deletes in batches, collection on three replicas that are
 * members of each other (held back by an offline one), a replica that
 * missed collected deletes refused with CVG_STATUS_BEHIND_HORIZON, and bad
 * input that changes nothing. */
#include "util.h"

/* An engine with the changes feed off (membership works without it). */
static cvg_engine_t *open_without_feed(const char *base, const char *name,
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
  OK(cvg_options_set_changes_feed(opts, false));
  OK(cvg_engine_open(path, opts, &e));
  cvg_options_free(opts);
  return e;
}

static void id_of(uint8_t id_byte, uint8_t out[16]) { memset(out, id_byte, 16); }

/* Whether the set `key` of `e` holds exactly the one member `only`
 * (`only` NULL: no member). */
static int members_are(const cvg_engine_t *e, const char *key, const char *only) {
  cvg_list_t *l = NULL;
  cvg_slice_t item;
  int ok;
  OK(cvg_engine_set_members(e, (const uint8_t *)key, strlen(key), &l, NULL));
  if (only == NULL) {
    ok = cvg_list_len(l) == 0;
  } else {
    ok = cvg_list_len(l) == 1;
    if (ok) {
      OK(cvg_list_get(l, 0, &item));
      ok = slice_is(item, only);
    }
  }
  cvg_list_free(l);
  return ok;
}

/* Count the keys an iterator gives; the type of `key` into `*type_of_key`
 * (CVG_CRDT_NONE if not listed). */
static size_t count_keys(cvg_iter_t *it, const char *key, cvg_crdt_type_t *type_of_key) {
  size_t n = 0;
  bool has = true;
  *type_of_key = CVG_CRDT_NONE;
  for (;;) {
    cvg_slice_t k;
    cvg_crdt_type_t t;
    OK(cvg_iter_next(it, &has, &k, &t));
    if (!has)
      break;
    if (slice_is(k, key))
      *type_of_key = t;
    n++;
  }
  cvg_iter_free(it);
  return n;
}

static void merge_delta(const cvg_engine_t *e, const char *key, cvg_bytes_t d) {
  CHECK(d.len > 0);
  OK(cvg_engine_merge(e, (const uint8_t *)key, strlen(key), d.ptr, d.len));
}

static void test_cart_and_absence(const char *base) {
  cvg_engine_t *phone = open_engine(base, "del-phone", 0x41);
  cvg_engine_t *laptop = open_engine(base, "del-laptop", 0x42);
  cvg_bytes_t tv = {NULL, 0}, del = {NULL, 0}, radio = {NULL, 0}, none = {NULL, 0};
  cvg_bytes_t st = {NULL, 0};
  cvg_crdt_type_t t = CVG_CRDT_GCOUNTER;
  bool found = false;
  int64_t v = -1;

  OK(cvg_engine_orset_add(phone, S("cart"), S("tv"), &tv));
  merge_delta(laptop, "cart", tv);
  /* Checkout on the phone deletes the cart; the laptop adds a radio. */
  OK(cvg_engine_delete(phone, S("cart"), &del));
  CHECK(del.len > 0);
  OK(cvg_engine_key_type(phone, S("cart"), &t));
  CHECK(t == CVG_CRDT_NONE);
  CHECK(members_are(phone, "cart", NULL));
  OK(cvg_engine_orset_add(laptop, S("cart"), S("radio"), &radio));
  merge_delta(phone, "cart", radio);
  merge_delta(laptop, "cart", del);
  /* Duplicates change nothing. */
  merge_delta(laptop, "cart", del);
  merge_delta(phone, "cart", radio);
  CHECK(members_are(phone, "cart", "radio"));
  CHECK(members_are(laptop, "cart", "radio"));
  {
    cvg_sync_outcome_t oa, ob;
    cvg_root_t ra, rb;
    OK(cvg_sync_engines(phone, laptop, NULL, &oa, &ob));
    OK(cvg_engine_root(phone, &ra));
    OK(cvg_engine_root(laptop, &rb));
    CHECK(memcmp(ra.hash, rb.hash, 16) == 0 && ra.count == rb.count);
  }

  /* Nothing to delete: success, an empty delta, nothing changed. */
  none.len = 99; /* overwritten on success */
  OK(cvg_engine_delete(phone, S("never"), &none));
  CHECK(none.ptr == NULL && none.len == 0);
  OK(cvg_engine_delete(phone, S("never"), NULL));
  OK(cvg_engine_key_type(phone, S("never"), &t));
  CHECK(t == CVG_CRDT_NONE);

  /* Absent is not empty: an emptied set is present, a deleted one not. */
  OK(cvg_engine_orset_add(phone, S("s"), S("x"), NULL));
  OK(cvg_engine_orset_remove(phone, S("s"), S("x"), NULL));
  OK(cvg_engine_key_type(phone, S("s"), &t));
  CHECK(t == CVG_CRDT_ORSET);
  {
    cvg_iter_t *it = NULL;
    OK(cvg_engine_keys(phone, S("s"), &it));
    CHECK(count_keys(it, "s", &t) == 1 && t == CVG_CRDT_ORSET);
  }
  OK(cvg_engine_delete(phone, S("s"), &none));
  CHECK(none.len > 0);
  cvg_bytes_free(&none);
  OK(cvg_engine_key_type(phone, S("s"), &t));
  CHECK(t == CVG_CRDT_NONE);
  {
    cvg_iter_t *it = NULL;
    OK(cvg_engine_keys(phone, S("s"), &it));
    CHECK(count_keys(it, "s", &t) == 0);
    /* The tombstone is a stored state, with the type the key keeps. */
    OK(cvg_engine_stored_keys(phone, S("s"), &it));
    CHECK(count_keys(it, "s", &t) == 1 && t == CVG_CRDT_ORSET);
    OK(cvg_engine_state_bytes(phone, S("s"), &found, &st));
    CHECK(found && st.len > 0);
    cvg_bytes_free(&st);
  }
  /* A second delete has nothing to delete. */
  none.len = 99;
  OK(cvg_engine_delete(phone, S("s"), &none));
  CHECK(none.ptr == NULL && none.len == 0);
  /* The key keeps its type while the tombstone lives: another type is
   * refused, for writes and reads; the same type re-creates the key. */
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_increment(phone, S("s"), 1, NULL));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_counter_value(phone, S("s"), &v));
  OK(cvg_engine_orset_add(phone, S("s"), S("y"), NULL));
  CHECK(members_are(phone, "s", "y"));

  /* Every type reads a deleted key as it reads a key never written. */
  OK(cvg_engine_pn_add(phone, S("pn"), -5, NULL));
  OK(cvg_engine_lww_set(phone, S("lww"), S("v"), NULL));
  OK(cvg_engine_mv_write(phone, S("mv"), S("v"), NULL, 0, NULL));
  OK(cvg_engine_delete(phone, S("pn"), NULL));
  OK(cvg_engine_delete(phone, S("lww"), NULL));
  OK(cvg_engine_delete(phone, S("mv"), NULL));
  OK(cvg_engine_counter_value(phone, S("pn"), &v));
  CHECK(v == 0);
  {
    cvg_bytes_t value = {NULL, 0};
    cvg_stamp_t stamp;
    cvg_siblings_t *sib = NULL;
    found = true;
    OK(cvg_engine_register(phone, S("lww"), &found, &value, &stamp));
    CHECK(!found && value.len == 0);
    OK(cvg_engine_mv_read(phone, S("mv"), &sib, NULL));
    CHECK(cvg_siblings_len(sib) == 0);
    cvg_siblings_free(sib);
  }

  cvg_bytes_free(&tv);
  cvg_bytes_free(&del);
  cvg_bytes_free(&radio);
  OK(cvg_engine_close(phone));
  OK(cvg_engine_close(laptop));
}

static void test_observed_and_bad_input(const char *base) {
  cvg_engine_t *e = open_engine(base, "del-observed", 0x43);
  cvg_bytes_t read = {NULL, 0}, before = {NULL, 0}, after = {NULL, 0}, gset = {NULL, 0};
  cvg_bytes_t untouched = {(uint8_t *)&read, 7};
  bool found = false;
  int64_t v = 0;
  cvg_batch_t *b = cvg_batch_new();
  cvg_deltas_t *d = NULL;
  static const uint8_t garbage[] = {0xff, 0x00, 0x13, 0x37};

  /* A delete based on an earlier read removes only what it read. */
  OK(cvg_engine_increment(e, S("c"), 3, NULL));
  OK(cvg_engine_state_bytes(e, S("c"), &found, &read));
  CHECK(found);
  OK(cvg_engine_increment(e, S("c"), 4, NULL));
  OK(cvg_engine_delete_observed(e, S("c"), read.ptr, read.len, NULL));
  OK(cvg_engine_counter_value(e, S("c"), &v));
  CHECK(v == 4);

  /* Bad input: a typed error, and nothing changed (outputs untouched). */
  OK(cvg_engine_state_bytes(e, S("c"), &found, &before));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_engine_delete_observed(e, S("c"), garbage, sizeof garbage, &untouched));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_delete_observed(e, S("c"), NULL, 0, &untouched));
  CHECK(untouched.ptr == (uint8_t *)&read && untouched.len == 7);
  /* The state of another type (a G-Set read) for a counter. */
  OK(cvg_engine_gset_add(e, S("g"), S("x"), NULL));
  OK(cvg_engine_state_bytes(e, S("g"), &found, &gset));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE,
             cvg_engine_delete_observed(e, S("c"), gset.ptr, gset.len, &untouched));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_delete_observed(e, S("c"), NULL, 3, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_delete(e, NULL, 1, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_delete(NULL, S("c"), NULL));
  CHECK(untouched.ptr == (uint8_t *)&read && untouched.len == 7);
  OK(cvg_engine_state_bytes(e, S("c"), &found, &after));
  CHECK(bytes_eq(before.ptr, before.len, after.ptr, after.len));
  cvg_bytes_free(&after);

  /* Batches: a delete, a delete with nothing to delete (no delta), a
   * delete based on a read. Bad observed bytes add nothing. */
  CHECK(b != NULL);
  OK(cvg_batch_increment(b, S("b1"), 1));
  OK(cvg_batch_delete(b, S("b1")));
  OK(cvg_batch_delete(b, S("never")));
  OK(cvg_batch_delete_observed(b, S("g"), gset.ptr, gset.len));
  CHECK(cvg_batch_len(b) == 4);
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_batch_delete_observed(b, S("g"), garbage, sizeof garbage));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_batch_delete(NULL, S("g")));
  CHECK(cvg_batch_len(b) == 4);
  OK(cvg_engine_write(e, b, &d));
  CHECK(cvg_deltas_len(d) == 3); /* the increment and two deletes */
  {
    cvg_slice_t k;
    OK(cvg_deltas_get(d, 2, &k, NULL));
    CHECK(slice_is(k, "g"));
  }
  cvg_deltas_free(d);
  d = NULL;
  {
    cvg_crdt_type_t t = CVG_CRDT_ORSET;
    OK(cvg_engine_key_type(e, S("b1"), &t));
    CHECK(t == CVG_CRDT_NONE);
    OK(cvg_engine_key_type(e, S("g"), &t));
    CHECK(t == CVG_CRDT_NONE);
  }
  /* A batch whose delete is based on a state of another type fails as a
   * whole: its other operations are not applied either. */
  OK(cvg_batch_clear(b));
  OK(cvg_batch_increment(b, S("c"), 10));
  OK(cvg_batch_delete_observed(b, S("c"), gset.ptr, gset.len));
  EXPECT_ERR(CVG_STATUS_WRONG_TYPE, cvg_engine_write(e, b, &d));
  CHECK(d == NULL);
  OK(cvg_engine_state_bytes(e, S("c"), &found, &after));
  CHECK(bytes_eq(before.ptr, before.len, after.ptr, after.len));
  cvg_bytes_free(&after);

  cvg_batch_free(b);
  cvg_bytes_free(&read);
  cvg_bytes_free(&before);
  cvg_bytes_free(&gset);
  OK(cvg_engine_close(e));
}

/* One sync session between `a` (initiator) and `b`, the messages carried
 * by cvg_sync_handle, one flight at a time; then each side acknowledges
 * what the other holds (both are members of each other here). Returns the
 * first failure. */
#define MAX_FLIGHT 64
static cvg_status_t sync_ack(const cvg_engine_t *a, uint8_t a_id, const cvg_engine_t *b,
                             uint8_t b_id) {
  cvg_sync_t *sa = NULL, *sb = NULL, *to;
  cvg_bytes_t first = {NULL, 0};
  cvg_list_t *flight[MAX_FLIGHT], *next[MAX_FLIGHT];
  size_t nflight = 0, nnext, i, j;
  cvg_status_t st;
  OK(cvg_sync_initiate(a, NULL, &sa, &first));
  OK(cvg_sync_respond(b, NULL, &sb));
  st = cvg_sync_handle(sb, first.ptr, first.len, &flight[0]);
  cvg_bytes_free(&first);
  if (st == CVG_STATUS_OK)
    nflight = 1;
  to = sa;
  /* Deliver every message of the flight in order; their replies form the
   * next flight, to the other side. */
  while (st == CVG_STATUS_OK && nflight > 0) {
    nnext = 0;
    for (i = 0; i < nflight; i++) {
      for (j = 0; j < cvg_list_len(flight[i]) && st == CVG_STATUS_OK; j++) {
        cvg_slice_t m;
        OK(cvg_list_get(flight[i], j, &m));
        CHECK(nnext < MAX_FLIGHT);
        st = cvg_sync_handle(to, m.ptr, m.len, &next[nnext]);
        if (st == CVG_STATUS_OK)
          nnext++;
      }
      cvg_list_free(flight[i]);
    }
    memcpy(flight, next, nnext * sizeof next[0]);
    nflight = nnext;
    to = to == sa ? sb : sa;
  }
  for (i = 0; i < nflight; i++)
    cvg_list_free(flight[i]);
  if (st == CVG_STATUS_OK) {
    cvg_bytes_t ctx = {NULL, 0};
    uint8_t id[16];
    OK(cvg_sync_acknowledged(sa, &ctx));
    id_of(b_id, id);
    OK(cvg_engine_acknowledge(a, id, 16, ctx.ptr, ctx.len));
    cvg_bytes_free(&ctx);
    OK(cvg_sync_acknowledged(sb, &ctx));
    id_of(a_id, id);
    OK(cvg_engine_acknowledge(b, id, 16, ctx.ptr, ctx.len));
    cvg_bytes_free(&ctx);
  }
  cvg_sync_free(sa);
  cvg_sync_free(sb);
  return st;
}

static void test_collection(const char *base) {
  const uint8_t ids[3] = {0x51, 0x52, 0x53};
  cvg_engine_t *e[3];
  cvg_collect_report_t r;
  cvg_blockers_t *bl = NULL;
  cvg_blocker_t one;
  cvg_bytes_t horizon = {NULL, 0};
  cvg_list_t *mid = NULL, *mctx = NULL;
  cvg_slice_t item;
  uint8_t id[16];
  size_t i, j;

  e[0] = open_engine(base, "gc-a", ids[0]);
  e[1] = open_engine(base, "gc-b", ids[1]);
  e[2] = open_without_feed(base, "gc-c", ids[2]);
  for (i = 0; i < 3; i++)
    for (j = 0; j < 3; j++)
      if (i != j) {
        id_of(ids[j], id);
        OK(cvg_engine_register_peer(e[i], id, 16));
      }
  /* Membership works with the changes feed off (the feed's info not). */
  OK(cvg_engine_members(e[2], &mid, &mctx));
  CHECK(cvg_list_len(mid) == 2 && cvg_list_len(mctx) == 2);
  OK(cvg_list_get(mid, 0, &item));
  id_of(ids[0], id);
  CHECK(bytes_eq(item.ptr, item.len, id, 16));
  OK(cvg_list_get(mid, 1, &item));
  id_of(ids[1], id);
  CHECK(bytes_eq(item.ptr, item.len, id, 16));
  cvg_list_free(mid);
  cvg_list_free(mctx);
  {
    cvg_feed_info_t f;
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_feed_info(e[2], &f, NULL, NULL));
  }

  OK(cvg_engine_orset_add(e[0], S("cart"), S("tv"), NULL));
  OK(cvg_engine_increment(e[0], S("kept"), 1, NULL));
  OK(sync_ack(e[0], ids[0], e[1], ids[1]));
  OK(sync_ack(e[0], ids[0], e[2], ids[2]));
  OK(sync_ack(e[1], ids[1], e[2], ids[2]));
  /* The acknowledgement is in the membership: B's context on A is A's
   * record now. */
  OK(cvg_engine_members(e[0], &mid, &mctx));
  OK(cvg_list_get(mctx, 0, &item));
  {
    cvg_bytes_t rec = {NULL, 0};
    OK(cvg_engine_context(e[0], &rec));
    CHECK(bytes_eq(item.ptr, item.len, rec.ptr, rec.len));
    cvg_bytes_free(&rec);
  }
  cvg_list_free(mid);
  cvg_list_free(mctx);

  OK(cvg_engine_delete(e[0], S("cart"), NULL));
  /* Nobody acknowledged the delete: nothing is collected; both peers hold
   * collection back. */
  OK(cvg_engine_collect(e[0], &r, &bl, &horizon));
  CHECK(r.collected == 0 && r.purged == 0 && r.waiting == 1 && r.blockers == 2);
  CHECK(cvg_blockers_len(bl) == 2);
  OK(cvg_blockers_get(bl, 0, &one));
  id_of(ids[1], id);
  CHECK(memcmp(one.replica, id, 16) == 0 && one.tombstones == 1);
  OK(cvg_blockers_get(bl, 1, &one));
  id_of(ids[2], id);
  CHECK(memcmp(one.replica, id, 16) == 0 && one.tombstones == 1);
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_blockers_get(bl, 2, &one));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_blockers_get(bl, 0, NULL));
  cvg_blockers_free(bl);
  bl = NULL;
  cvg_bytes_free(&horizon);
  {
    cvg_bytes_t state = {NULL, 0};
    bool found = false;
    OK(cvg_engine_state_bytes(e[0], S("cart"), &found, &state));
    CHECK(found);
    cvg_bytes_free(&state);
  }

  /* B acknowledges; C is offline: collection is held back, by C only. */
  OK(sync_ack(e[0], ids[0], e[1], ids[1]));
  OK(cvg_engine_tombstones(e[0], &r, &bl, NULL));
  CHECK(r.waiting == 1 && r.collected == 0 && r.blockers == 1);
  OK(cvg_blockers_get(bl, 0, &one));
  id_of(ids[2], id);
  CHECK(memcmp(one.replica, id, 16) == 0 && one.tombstones == 1);
  cvg_blockers_free(bl);
  bl = NULL;
  OK(cvg_engine_collect(e[0], &r, NULL, NULL));
  CHECK(r.collected == 0 && r.waiting == 1);

  /* C comes back: the tombstone is collected and the key purged. */
  OK(sync_ack(e[2], ids[2], e[0], ids[0]));
  OK(cvg_engine_tombstones(e[0], &r, NULL, NULL));
  CHECK(r.collected == 1 && r.purged == 1 && r.waiting == 0); /* would */
  OK(cvg_engine_collect(e[0], &r, &bl, &horizon));
  CHECK(r.collected == 1 && r.purged == 1 && r.waiting == 0 && r.blockers == 0);
  CHECK(cvg_blockers_len(bl) == 0);
  CHECK(horizon.len > 0);
  cvg_blockers_free(bl);
  bl = NULL;
  cvg_bytes_free(&horizon);
  {
    cvg_iter_t *it = NULL;
    cvg_crdt_type_t t;
    OK(cvg_engine_stored_keys(e[0], NULL, 0, &it));
    CHECK(count_keys(it, "cart", &t) == 1 && t == CVG_CRDT_NONE); /* "kept" only */
  }

  /* A replica that missed the collected delete and holds data of its own
   * is refused, by sync sessions and by cvg_sync_engines; nothing
   * changes. An empty replica may catch up. */
  {
    cvg_engine_t *late = open_engine(base, "gc-late", 0x5a);
    cvg_engine_t *empty = open_engine(base, "gc-empty", 0x5b);
    cvg_sync_outcome_t oa = CVG_SYNC_RUNNING, ob = CVG_SYNC_RUNNING;
    cvg_root_t before, after;
    cvg_sync_t *s = NULL;
    cvg_bytes_t ctx = {NULL, 0};
    OK(cvg_engine_increment(late, S("mine"), 1, NULL));
    OK(cvg_engine_root(e[0], &before));
    EXPECT_ERR(CVG_STATUS_BEHIND_HORIZON, cvg_sync_engines(late, e[0], NULL, &oa, &ob));
    CHECK(oa == CVG_SYNC_RUNNING && ob == CVG_SYNC_RUNNING); /* not written */
    EXPECT_ERR(CVG_STATUS_BEHIND_HORIZON, cvg_sync_engines(e[0], late, NULL, NULL, NULL));
    EXPECT_ERR(CVG_STATUS_BEHIND_HORIZON, sync_ack(late, 0x5a, e[0], ids[0]));
    CHECK(strcmp(cvg_status_name(CVG_STATUS_BEHIND_HORIZON), "CVG_STATUS_BEHIND_HORIZON") == 0);
    OK(cvg_engine_root(e[0], &after));
    CHECK(before.count == after.count && memcmp(before.hash, after.hash, 16) == 0);
    OK(cvg_sync_engines(empty, e[0], NULL, &oa, &ob));
    CHECK(oa == CVG_SYNC_CONVERGED && ob == CVG_SYNC_CONVERGED);
    /* A session that has not ended has no acknowledged context. */
    OK(cvg_sync_initiate(e[0], NULL, &s, &ctx));
    cvg_bytes_free(&ctx);
    ctx.len = 5;
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_sync_acknowledged(s, &ctx));
    CHECK(ctx.len == 5 && ctx.ptr == NULL);
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_acknowledged(s, NULL));
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_acknowledged(NULL, &ctx));
    cvg_sync_free(s);
    OK(cvg_engine_close(late));
    OK(cvg_engine_close(empty));
  }

  /* Null arguments. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_collect(NULL, &r, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_collect(e[0], NULL, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_tombstones(e[0], NULL, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_members(e[0], NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_stored_keys(e[0], NULL, 0, NULL));
  CHECK(cvg_blockers_len(NULL) == 0);
  cvg_blockers_free(NULL);

  /* Retiring a member: collection stops waiting for it. */
  OK(cvg_engine_orset_add(e[0], S("cart2"), S("x"), NULL));
  OK(cvg_engine_delete(e[0], S("cart2"), NULL));
  OK(cvg_engine_tombstones(e[0], &r, NULL, NULL));
  CHECK(r.waiting == 1 && r.blockers == 2);
  for (i = 1; i < 3; i++) {
    id_of(ids[i], id);
    OK(cvg_engine_remove_peer(e[0], id, 16));
  }
  OK(cvg_engine_members(e[0], &mid, NULL));
  CHECK(cvg_list_len(mid) == 0);
  cvg_list_free(mid);
  OK(cvg_engine_collect(e[0], &r, NULL, NULL));
  CHECK(r.collected == 1 && r.purged == 1 && r.waiting == 0);

  for (i = 0; i < 3; i++)
    OK(cvg_engine_close(e[i]));
}

void test_deletes(const char *base) {
  test_cart_and_absence(base);
  test_observed_and_bad_input(base);
  test_collection(base);
}
