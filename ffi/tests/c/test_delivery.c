/* Causal delivery and the changes feed: a comment is never visible before
 * its post (three replicas, a restart in between), pages of changes and
 * their deliveries, a cursor older than the log falling back to an
 * anti-entropy session, a full pending area, peers and the feed's state,
 * and forged or truncated cursors and pages. The text between the two
 * EXAMPLE marker lines is the "Push replication from a cursor" code block
 * of docs/C_API.md byte for byte (ffi/tests/run.sh compares them). */
#include "util.h"

/* EXAMPLE BEGIN (docs/C_API.md, "Push replication from a cursor") */
#include "converge.h"

/* Push to `peer` the operations of `origin` that `*cursor` lacks, a page
 * at a time, and record on `origin` that the peer holds them. `*cursor`
 * is what the origin knows the peer holds ({NULL, 0} at first); on
 * success it is the cursor to continue from next time. The peer must be
 * registered on `origin` (cvg_engine_register_peer) so that the log keeps
 * what it has not acknowledged. Over a network, the page travels to the
 * peer and the acknowledgement comes back once it is applied (or kept
 * pending: it waits there, persisted, for its dependencies). */
static cvg_status_t push_changes(const cvg_engine_t *origin, const cvg_engine_t *peer,
                                 const uint8_t peer_id[16], cvg_bytes_t *cursor) {
  cvg_status_t st = CVG_STATUS_OK;
  bool more = true;
  while (st == CVG_STATUS_OK && more) {
    cvg_bytes_t page = {NULL, 0}, next = {NULL, 0};
    st = cvg_engine_changes_since(origin, cursor->ptr, cursor->len, 256, &page, &next,
                                  NULL, &more);
    if (st == CVG_STATUS_OK && page.len > 0) /* {NULL, 0}: nothing new */
      st = cvg_engine_apply_changes(peer, page.ptr, page.len, NULL);
    if (st == CVG_STATUS_OK)
      st = cvg_engine_acknowledge(origin, peer_id, 16, next.ptr, next.len);
    if (st == CVG_STATUS_OK) {
      cvg_bytes_free(cursor);
      *cursor = next;
    } else {
      cvg_bytes_free(&next);
    }
    cvg_bytes_free(&page);
  }
  return st;
}

/* Usage: push; if the log no longer holds what the peer lacks
 * (CVG_STATUS_CURSOR_TOO_OLD), repair with an anti-entropy session and
 * continue the feed from what the peer holds now. */
static cvg_status_t replicate(const cvg_engine_t *origin, const cvg_engine_t *peer,
                              const uint8_t peer_id[16], cvg_bytes_t *cursor) {
  cvg_status_t st = push_changes(origin, peer, peer_id, cursor);
  if (st == CVG_STATUS_CURSOR_TOO_OLD) {
    st = cvg_sync_engines(origin, peer, NULL, NULL, NULL);
    if (st == CVG_STATUS_OK) {
      cvg_bytes_free(cursor);
      st = cvg_engine_context(peer, cursor); /* the peer's record is a cursor */
    }
    if (st == CVG_STATUS_OK)
      st = push_changes(origin, peer, peer_id, cursor);
  }
  return st;
}
/* EXAMPLE END */

static cvg_bytes_t context_of(const cvg_engine_t *e) {
  cvg_bytes_t t = {NULL, 0};
  OK(cvg_engine_context(e, &t));
  return t;
}

static int same(cvg_bytes_t a, cvg_bytes_t b) { return bytes_eq(a.ptr, a.len, b.ptr, b.len); }

static int64_t counter_of(const cvg_engine_t *e, const char *key) {
  int64_t v = -1;
  OK(cvg_engine_counter_value(e, (const uint8_t *)key, strlen(key), &v));
  return v;
}

/* The number of members of the set `key`; the first one must be `first`
 * when there is one. */
static size_t members_of(const cvg_engine_t *e, const char *key, const char *first) {
  cvg_list_t *l = NULL;
  size_t n;
  OK(cvg_engine_set_members(e, (const uint8_t *)key, strlen(key), &l, NULL));
  n = cvg_list_len(l);
  if (n > 0) {
    cvg_slice_t s;
    OK(cvg_list_get(l, 0, &s));
    CHECK(slice_is(s, first));
  }
  cvg_list_free(l);
  return n;
}

static cvg_pending_info_t pending_of(const cvg_engine_t *e) {
  cvg_pending_info_t p;
  memset(&p, 0xEE, sizeof p);
  OK(cvg_engine_pending(e, &p, NULL));
  return p;
}

/* How many operations of `token` the engine lacks. */
static uint64_t lacks(const cvg_engine_t *e, cvg_bytes_t token) {
  uint64_t n = UINT64_MAX;
  OK(cvg_engine_token_missing(e, token.ptr, token.len, &n));
  return n;
}

static cvg_bytes_t token_of(cvg_bytes_t delta) {
  cvg_bytes_t t = {NULL, 0};
  OK(cvg_delta_token(delta.ptr, delta.len, &t));
  return t;
}

/* Open `<base>/<name>` like open_engine, with the feed and pending-area
 * options given. */
static cvg_engine_t *open_with(const char *base, const char *name, uint8_t id_byte,
                               bool feed, uint64_t retain, size_t max_pending) {
  char path[1024];
  uint8_t id[16];
  cvg_options_t *opts = cvg_options_new();
  cvg_engine_t *e = NULL;
  snprintf(path, sizeof path, "%s/%s", base, name);
  memset(id, id_byte, sizeof id);
  OK(cvg_options_set_replica_id(opts, id, sizeof id));
  OK(cvg_options_set_block_cache_bytes(opts, 1 << 20));
  OK(cvg_options_set_write_buffer_bytes(opts, 1 << 20));
  OK(cvg_options_set_background_jobs(opts, 1));
  OK(cvg_options_set_changes_feed(opts, feed));
  OK(cvg_options_set_feed_retain_bytes(opts, retain));
  OK(cvg_options_set_max_pending(opts, max_pending));
  OK(cvg_options_set_max_pending_bytes(opts, 1 << 20));
  OK(cvg_engine_open(path, opts, &e));
  cvg_options_free(opts);
  return e;
}

/* Alice posts on A; Bob reads it on B and comments; C receives the
 * comment first: kept pending (across a restart), never shown before the
 * post, then both are visible. */
static void post_and_comment(const char *base) {
  cvg_engine_t *a = open_engine(base, "pc-a", 1);
  cvg_engine_t *b = open_engine(base, "pc-b", 2);
  cvg_engine_t *c = open_engine(base, "pc-c", 3);
  cvg_bytes_t post = {NULL, 0}, comment = {NULL, 0}, needed = {NULL, 0};
  cvg_bytes_t post_token, comment_token, joined = {NULL, 0};
  cvg_pending_info_t p;

  OK(cvg_engine_orset_add(a, S("post:1"), S("Hello from Alice"), &post));
  OK(cvg_engine_merge(b, S("post:1"), post.ptr, post.len));
  CHECK(members_of(b, "post:1", "Hello from Alice") == 1);
  OK(cvg_engine_orset_add(b, S("comment:1"), S("Welcome, Alice"), &comment));
  post_token = token_of(post);
  comment_token = token_of(comment);

  /* The comment arrives at C before the post: kept, not shown. */
  OK(cvg_engine_merge(c, S("comment:1"), comment.ptr, comment.len));
  CHECK(members_of(c, "comment:1", "") == 0);
  CHECK(lacks(c, comment_token) == 1);
  memset(&p, 0xEE, sizeof p);
  OK(cvg_engine_pending(c, &p, &needed));
  CHECK(p.entries == 1 && p.missing == 1 && p.stuck == 0 && p.bytes > 0);
  /* What it needs is the post: needed joined with the post's token is
   * needed itself, and C lacks exactly one of its operations. */
  OK(cvg_token_join(needed.ptr, needed.len, post_token.ptr, post_token.len, &joined));
  CHECK(same(joined, needed));
  CHECK(lacks(c, needed) == 1);
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_pending(c, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_pending(NULL, &p, NULL));

  /* The pending entry is persisted: it survives a restart of C. */
  OK(cvg_engine_close(c));
  c = open_engine(base, "pc-c", 3);
  p = pending_of(c);
  CHECK(p.entries == 1 && p.missing == 1);
  CHECK(members_of(c, "comment:1", "") == 0);

  /* The post arrives: both are visible, the comment's dot recorded. */
  OK(cvg_engine_merge(c, S("post:1"), post.ptr, post.len));
  CHECK(members_of(c, "post:1", "Hello from Alice") == 1);
  CHECK(members_of(c, "comment:1", "Welcome, Alice") == 1);
  CHECK(lacks(c, comment_token) == 0 && lacks(c, needed) == 0);
  p = pending_of(c);
  CHECK(p.entries == 0 && p.bytes == 0 && p.missing == 0 && p.stuck == 0);

  cvg_bytes_free(&joined);
  cvg_bytes_free(&needed);
  cvg_bytes_free(&comment_token);
  cvg_bytes_free(&post_token);
  cvg_bytes_free(&comment);
  cvg_bytes_free(&post);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(c));
}

/* Ask `e` for a page from `cursor`; the page must carry `ops` operations. */
static cvg_bytes_t page_from(const cvg_engine_t *e, cvg_bytes_t cursor, size_t limit,
                             uint64_t ops, bool more, cvg_bytes_t *next) {
  cvg_bytes_t page = {NULL, 0};
  uint64_t got = UINT64_MAX;
  bool got_more = !more;
  OK(cvg_engine_changes_since(e, cursor.ptr, cursor.len, limit, &page, next, &got, &got_more));
  CHECK(got == ops && got_more == more);
  CHECK((page.len > 0) == (ops > 0));
  return page;
}

static cvg_delivery_t deliver(const cvg_engine_t *e, cvg_bytes_t page) {
  cvg_delivery_t d = 255;
  OK(cvg_engine_apply_changes(e, page.ptr, page.len, &d));
  return d;
}

/* Pages of a feed: coalesced, applied atomically, duplicates recognized,
 * empty when nothing is new, and later pages waiting for earlier ones. */
static void feed_pages(const char *base) {
  cvg_engine_t *a = open_engine(base, "fp-a", 1);
  cvg_engine_t *b = open_engine(base, "fp-b", 2);
  cvg_bytes_t cursor, next = {NULL, 0}, page, empty, n1 = {NULL, 0}, n2 = {NULL, 0},
                      n3 = {NULL, 0}, p1, p2, p3;
  int i;

  for (i = 0; i < 100; i++)
    OK(cvg_engine_increment(a, S("hot"), 1, NULL));
  OK(cvg_engine_orset_add(a, S("set"), S("x"), NULL));
  cursor = context_of(b);
  page = page_from(a, cursor, 1000, 101, false, &next);
  CHECK(deliver(b, page) == CVG_DELIVERY_APPLIED);
  CHECK(counter_of(b, "hot") == 100);
  CHECK(members_of(b, "set", "x") == 1);
  cvg_bytes_free(&cursor);
  cursor = context_of(b);
  CHECK(same(cursor, next)); /* the page's next is the peer's record */
  CHECK(deliver(b, page) == CVG_DELIVERY_DUPLICATE);
  CHECK(strcmp(cvg_delivery_name(CVG_DELIVERY_APPLIED), "applied") == 0);
  CHECK(strcmp(cvg_delivery_name(CVG_DELIVERY_PENDING), "pending") == 0);
  CHECK(strcmp(cvg_delivery_name(CVG_DELIVERY_DUPLICATE), "duplicate") == 0);
  CHECK(strcmp(cvg_delivery_name(3), "unknown") == 0);
  cvg_bytes_free(&next);
  cvg_bytes_free(&page);

  /* Nothing new: an empty page ({NULL, 0}) and the same cursor. */
  empty = page_from(a, cursor, 10, 0, false, &next);
  CHECK(empty.ptr == NULL && empty.len == 0);
  CHECK(same(next, cursor));
  cvg_bytes_free(&next);

  /* Pages of 4, in order; the later ones applied first wait. */
  for (i = 0; i < 10; i++)
    OK(cvg_engine_increment(a, S("hot"), 1, NULL));
  p1 = page_from(a, cursor, 4, 4, true, &n1);
  p2 = page_from(a, n1, 4, 4, true, &n2);
  p3 = page_from(a, n2, 4, 2, false, &n3);
  CHECK(deliver(b, p3) == CVG_DELIVERY_PENDING);
  CHECK(deliver(b, p2) == CVG_DELIVERY_PENDING);
  CHECK(deliver(b, p3) == CVG_DELIVERY_PENDING); /* kept once */
  CHECK(counter_of(b, "hot") == 100);
  CHECK(pending_of(b).entries == 2);
  CHECK(deliver(b, p1) == CVG_DELIVERY_APPLIED);
  CHECK(counter_of(b, "hot") == 110);
  CHECK(pending_of(b).entries == 0);
  CHECK(deliver(b, p2) == CVG_DELIVERY_DUPLICATE);
  cvg_bytes_free(&cursor);
  cursor = context_of(b);
  CHECK(same(cursor, n3));
  /* No delivery output is needed. */
  OK(cvg_engine_apply_changes(b, p1.ptr, p1.len, NULL));

  cvg_bytes_free(&p1);
  cvg_bytes_free(&p2);
  cvg_bytes_free(&p3);
  cvg_bytes_free(&n1);
  cvg_bytes_free(&n2);
  cvg_bytes_free(&n3);
  cvg_bytes_free(&cursor);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

/* The feed's log is truncated past its retention bound although peer 2
 * never acknowledged: peer 2's cursor is too old, an anti-entropy session
 * repairs it and the feed continues from its record. Also the peer
 * calls and what feed_info reports. */
static void cursor_too_old(const char *base) {
  cvg_engine_t *a = open_with(base, "old-a", 1, true, 16 << 10, 100000);
  cvg_engine_t *b = open_engine(base, "old-b", 2);
  uint8_t peer[16], other[16];
  cvg_bytes_t cursor = {NULL, 0}, page = {NULL, 0}, next = {NULL, 0};
  cvg_feed_info_t info;
  cvg_list_t *ids = NULL, *cursors = NULL;
  cvg_slice_t s;
  int i, j;

  memset(peer, 2, sizeof peer);
  memset(other, 9, sizeof other);
  OK(cvg_engine_register_peer(a, peer, sizeof peer));
  OK(cvg_engine_register_peer(a, peer, sizeof peer)); /* again: no change */
  OK(cvg_engine_register_peer(a, other, sizeof other));
  OK(cvg_engine_feed_info(a, &info, &ids, &cursors));
  CHECK(info.peers == 2 && info.last == 0 && info.floor == 1 && info.bytes == 0);
  CHECK(cvg_list_len(ids) == 2 && cvg_list_len(cursors) == 2);
  OK(cvg_list_get(ids, 0, &s)); /* ascending ids */
  CHECK(bytes_eq(s.ptr, s.len, peer, 16));
  OK(cvg_list_get(ids, 1, &s));
  CHECK(bytes_eq(s.ptr, s.len, other, 16));
  OK(cvg_list_get(cursors, 0, &s)); /* nothing acknowledged: the empty cursor */
  {
    uint64_t n = UINT64_MAX;
    OK(cvg_engine_token_missing(a, s.ptr, s.len, &n));
    CHECK(n == 0);
  }
  cvg_list_free(ids);
  cvg_list_free(cursors);
  OK(cvg_engine_remove_peer(a, other, sizeof other));
  OK(cvg_engine_remove_peer(a, other, sizeof other)); /* unknown: no change */

  /* 2,000 writes of 64 bytes, in batches: far more than 16 KiB of log. */
  for (i = 0; i < 20; i++) {
    cvg_batch_t *batch = cvg_batch_new();
    uint8_t value[64];
    memset(value, 7, sizeof value);
    for (j = 0; j < 100; j++) {
      char key[16];
      int n = snprintf(key, sizeof key, "k%d", (i * 100 + j) % 50);
      OK(cvg_batch_lww_set(batch, (const uint8_t *)key, (size_t)n, value, sizeof value));
    }
    OK(cvg_engine_write(a, batch, NULL));
    cvg_batch_free(batch);
  }
  OK(cvg_engine_feed_info(a, &info, NULL, NULL));
  CHECK(info.last == 2000 && info.floor > 1 && info.peers == 1);
  CHECK(info.bytes < 200 << 10);

  /* The peer's cursor lacks operation 1, which the log dropped. */
  cursor = context_of(b);
  page.len = 12345;
  EXPECT_ERR(CVG_STATUS_CURSOR_TOO_OLD,
             cvg_engine_changes_since(a, cursor.ptr, cursor.len, 100, &page, &next, NULL, NULL));
  CHECK(page.len == 12345 && page.ptr == NULL && next.ptr == NULL); /* untouched */
  page.len = 0;
  {
    char msg[256];
    cvg_last_error_message(msg, sizeof msg);
    CHECK(strstr(msg, "lacks operation 1") != NULL);
  }

  /* The remedy: the example's replicate() syncs, then continues from
   * the peer's record. */
  OK(replicate(a, b, peer, &cursor));
  {
    bool has = false;
    cvg_bytes_t v = {NULL, 0};
    OK(cvg_engine_register(b, S("k49"), &has, &v, NULL));
    CHECK(has && v.len == 64 && v.ptr[0] == 7);
    cvg_bytes_free(&v);
  }
  OK(cvg_engine_lww_set(a, S("k0"), S("new"), NULL));
  OK(replicate(a, b, peer, &cursor));
  {
    bool has = false;
    cvg_bytes_t v = {NULL, 0};
    OK(cvg_engine_register(b, S("k0"), &has, &v, NULL));
    CHECK(has && bytes_eq(v.ptr, v.len, (const uint8_t *)"new", 3));
    cvg_bytes_free(&v);
  }
  /* Everything was acknowledged: the log keeps nothing. */
  OK(cvg_engine_feed_info(a, &info, &ids, &cursors));
  CHECK(info.floor == info.last + 1 && info.last == 2001 && info.peers == 1);
  OK(cvg_list_get(cursors, 0, &s));
  CHECK(bytes_eq(s.ptr, s.len, cursor.ptr, cursor.len));
  cvg_list_free(ids);
  cvg_list_free(cursors);
  /* A third pass finds nothing to push. */
  OK(replicate(a, b, peer, &cursor));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_feed_info(a, NULL, NULL, NULL));

  cvg_bytes_free(&cursor);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

/* A pending area of 3 entries: the fourth is refused and changes
 * nothing; the missing first delta drains the area; the refused one can
 * come again. */
static void pending_full(const char *base) {
  cvg_engine_t *a = open_engine(base, "full-a", 1);
  cvg_engine_t *c = open_with(base, "full-c", 3, true, 64 << 20, 3);
  cvg_bytes_t ds[6], before, after;
  int i;

  for (i = 0; i < 6; i++) {
    ds[i].ptr = NULL;
    ds[i].len = 0;
    OK(cvg_engine_increment(a, S("n"), 1, &ds[i]));
  }
  for (i = 1; i < 4; i++)
    OK(cvg_engine_merge(c, S("n"), ds[i].ptr, ds[i].len));
  CHECK(pending_of(c).entries == 3);
  before = context_of(c);
  EXPECT_ERR(CVG_STATUS_PENDING_FULL, cvg_engine_merge(c, S("n"), ds[4].ptr, ds[4].len));
  {
    char msg[256];
    cvg_last_error_message(msg, sizeof msg);
    CHECK(strstr(msg, "4 entries") != NULL && strstr(msg, "limits 3 entries") != NULL);
  }
  /* In a batch too: the whole batch is refused. */
  {
    cvg_batch_t *batch = cvg_batch_new();
    OK(cvg_batch_increment(batch, S("other"), 5));
    OK(cvg_batch_merge(batch, S("n"), ds[5].ptr, ds[5].len));
    EXPECT_ERR(CVG_STATUS_PENDING_FULL, cvg_engine_write(c, batch, NULL));
    cvg_batch_free(batch);
    CHECK(counter_of(c, "other") == 0);
  }
  CHECK(pending_of(c).entries == 3);
  after = context_of(c);
  CHECK(same(before, after));
  CHECK(counter_of(c, "n") == 0);

  OK(cvg_engine_merge(c, S("n"), ds[0].ptr, ds[0].len));
  CHECK(counter_of(c, "n") == 4);
  CHECK(pending_of(c).entries == 0);
  OK(cvg_engine_merge(c, S("n"), ds[4].ptr, ds[4].len));
  OK(cvg_engine_merge(c, S("n"), ds[5].ptr, ds[5].len));
  CHECK(counter_of(c, "n") == 6);

  for (i = 0; i < 6; i++)
    cvg_bytes_free(&ds[i]);
  cvg_bytes_free(&before);
  cvg_bytes_free(&after);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(c));
}

/* Forged, truncated and damaged cursors and pages, bad arguments and a
 * disabled feed: typed statuses, untouched outputs, nothing changed. */
static void bad_feed_input(const char *base) {
  cvg_engine_t *a = open_engine(base, "bad-a", 1);
  cvg_engine_t *b = open_engine(base, "bad-b", 2);
  /* Another store with a's replica id that issued 50 operations: its
   * record claims operations a never issued. */
  cvg_engine_t *forger = open_engine(base, "bad-forger", 1);
  cvg_engine_t *off = open_with(base, "bad-off", 4, false, 64 << 20, 100000);
  cvg_bytes_t forged, page = {NULL, 0}, next = {NULL, 0}, delta = {NULL, 0};
  static uint8_t x[1] = {'x'};
  cvg_bytes_t none = {NULL, 0}, sentinel = {x, 1}, out, before, after;
  cvg_delivery_t d = 77;
  uint64_t ops = 99;
  bool more = true;
  uint8_t peer[16];
  size_t cut;
  int i;
  static const uint8_t junk[] = {0xFF, 0x00, 0x13, 0x37};

  memset(peer, 2, sizeof peer);
  OK(cvg_engine_increment(a, S("n"), 1, &delta));
  for (i = 0; i < 50; i++)
    OK(cvg_engine_increment(forger, S("n"), 1, NULL));
  forged = context_of(forger);
  out = sentinel;
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_engine_changes_since(a, forged.ptr, forged.len, 10, &out, &next, &ops, &more));
  CHECK(out.ptr == sentinel.ptr && next.ptr == NULL && ops == 99 && more);
  /* Truncated and garbage cursors do not decode. */
  for (cut = 1; cut < forged.len; cut++)
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
               cvg_engine_changes_since(a, forged.ptr, cut, 10, &out, &next, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_engine_changes_since(a, junk, sizeof junk, 10, &out, &next, NULL, NULL));
  /* A delta is no cursor. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
             cvg_engine_changes_since(a, delta.ptr, delta.len, 10, &out, &next, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_engine_changes_since(a, NULL, 0, 0, &out, &next, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_changes_since(a, NULL, 0, 10, NULL, &next, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_changes_since(a, NULL, 0, 10, &out, NULL, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_changes_since(NULL, NULL, 0, 10, &out, &next, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_engine_changes_since(a, NULL, 3, 10, &out, &next, NULL, NULL));
  CHECK(out.ptr == sentinel.ptr && next.ptr == NULL);

  /* Peers: ids of 16 bytes, registered before acknowledging, cursors
   * that decode and claim nothing unissued. */
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_acknowledge(a, peer, 16, NULL, 0));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_register_peer(a, peer, 15));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_register_peer(a, NULL, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_register_peer(a, NULL, 16));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_remove_peer(a, peer, 17));
  OK(cvg_engine_register_peer(a, peer, 16));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_engine_acknowledge(a, peer, 16, forged.ptr, forged.len));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_acknowledge(a, peer, 16, junk, sizeof junk));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_acknowledge(a, peer, 3, NULL, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_acknowledge(NULL, peer, 16, NULL, 0));
  OK(cvg_engine_acknowledge(a, peer, 16, NULL, 0));

  /* Pages: every truncation, a flipped byte, a delta, junk. */
  page = page_from(a, none, 10, 1, false, &next);
  before = context_of(b);
  for (cut = 0; cut < page.len; cut++)
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_apply_changes(b, page.ptr, cut, &d));
  page.ptr[4] ^= 1;
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_apply_changes(b, page.ptr, page.len, &d));
  page.ptr[4] ^= 1;
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_apply_changes(b, delta.ptr, delta.len, &d));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_apply_changes(b, junk, sizeof junk, &d));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_apply_changes(b, NULL, 5, &d));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_apply_changes(NULL, page.ptr, page.len, &d));
  /* A page is no delta. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_merge(b, S("n"), page.ptr, page.len));
  CHECK(d == 77);
  after = context_of(b);
  CHECK(same(before, after));
  CHECK(counter_of(b, "n") == 0);
  CHECK(pending_of(b).entries == 0);
  /* The intact page still applies. */
  CHECK(deliver(b, page) == CVG_DELIVERY_APPLIED);
  CHECK(counter_of(b, "n") == 1);

  /* With the feed off: no log, no feed calls; pages still apply. The
   * peer calls keep membership (for the collection of tombstones). */
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_engine_changes_since(off, NULL, 0, 10, &out, &next, NULL, NULL));
  {
    cvg_feed_info_t info;
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_feed_info(off, &info, NULL, NULL));
  }
  OK(cvg_engine_register_peer(off, peer, 16));
  {
    cvg_list_t *ids = NULL;
    OK(cvg_engine_members(off, &ids, NULL));
    CHECK(cvg_list_len(ids) == 1);
    cvg_list_free(ids);
    OK(cvg_engine_remove_peer(off, peer, 16));
    OK(cvg_engine_members(off, &ids, NULL));
    CHECK(cvg_list_len(ids) == 0);
    cvg_list_free(ids);
  }
  CHECK(deliver(off, page) == CVG_DELIVERY_APPLIED);
  CHECK(counter_of(off, "n") == 1);

  /* The setters' NULL checks. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_changes_feed(NULL, true));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_feed_retain_bytes(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_max_pending(NULL, 1));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_options_set_max_pending_bytes(NULL, 1));

  cvg_bytes_free(&page);
  cvg_bytes_free(&next);
  cvg_bytes_free(&before);
  cvg_bytes_free(&after);
  cvg_bytes_free(&forged);
  cvg_bytes_free(&delta);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(forger));
  OK(cvg_engine_close(off));
}

void test_delivery(const char *base) {
  post_and_comment(base);
  feed_pages(base);
  cursor_too_old(base);
  pending_full(base);
  bad_feed_input(base);
}
