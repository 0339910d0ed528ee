/* Session tokens: read-your-writes and monotonic reads across two
 * replicas, waits woken by merges made on another thread, forged and
 * truncated tokens, joins, and the tokens of batch writes. The text
 * between the two EXAMPLE marker lines is the "Session tokens" code block
 * of docs/C_API.md byte for byte (ffi/tests/run.sh compares them). */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#include "util.h"

#include <pthread.h>
#include <time.h>

/* EXAMPLE BEGIN (docs/C_API.md, "Session tokens") */
#include "converge.h"

/* A client's session token is the join of the tokens of its writes and of
 * what its reads saw; it starts as {NULL, 0}, the empty token. */

/* Replace `*session` by its join with `token`. */
static cvg_status_t session_add(cvg_bytes_t *session, const uint8_t *token, size_t len) {
  cvg_bytes_t joined = {NULL, 0};
  cvg_status_t st = cvg_token_join(session->ptr, session->len, token, len, &joined);
  if (st == CVG_STATUS_OK) {
    cvg_bytes_free(session);
    *session = joined;
  }
  return st;
}

/* After a write: add the token of the delta it returned. */
static cvg_status_t session_wrote(cvg_bytes_t *session, const cvg_bytes_t *delta) {
  cvg_bytes_t token = {NULL, 0};
  cvg_status_t st = cvg_delta_token(delta->ptr, delta->len, &token);
  if (st == CVG_STATUS_OK)
    st = session_add(session, token.ptr, token.len);
  cvg_bytes_free(&token);
  return st;
}

/* Read the counter "likes" at `replica` for the session: wait at most
 * `timeout_ms` until the replica holds everything the session wrote or
 * saw (CVG_STATUS_NOT_YET_VISIBLE if it still does not: read elsewhere or
 * later), read, and add what the replica held to the session. */
static cvg_status_t session_read_likes(const cvg_engine_t *replica, cvg_bytes_t *session,
                                       uint64_t timeout_ms, int64_t *likes_out) {
  cvg_bytes_t seen = {NULL, 0};
  int64_t likes = 0;
  cvg_status_t st = cvg_engine_wait_for(replica, session->ptr, session->len, timeout_ms);
  if (st == CVG_STATUS_OK) /* before the read: the read sees at least this */
    st = cvg_engine_context(replica, &seen);
  if (st == CVG_STATUS_OK)
    st = cvg_engine_counter_value(replica, (const uint8_t *)"likes", 5, &likes);
  if (st == CVG_STATUS_OK)
    st = session_add(session, seen.ptr, seen.len);
  if (st == CVG_STATUS_OK)
    *likes_out = likes;
  cvg_bytes_free(&seen);
  return st;
}

/* Usage: like at `a`, then read at `b` if it has the like within 10 ms
 * (replication merges the delta there), else at `a`, which has it. */
static int64_t like_then_read(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_bytes_t session = {NULL, 0}, delta = {NULL, 0};
  int64_t likes = -1;
  cvg_status_t st = cvg_engine_increment(a, (const uint8_t *)"likes", 5, 1, &delta);
  if (st == CVG_STATUS_OK)
    st = session_wrote(&session, &delta);
  /* ... `delta` is on its way to b, for cvg_engine_merge there ... */
  if (st == CVG_STATUS_OK)
    st = session_read_likes(b, &session, 10, &likes);
  if (st == CVG_STATUS_NOT_YET_VISIBLE) /* b lags behind this session */
    st = session_read_likes(a, &session, 0, &likes);
  cvg_bytes_free(&delta);
  cvg_bytes_free(&session);
  return st == CVG_STATUS_OK ? likes : -1;
}
/* EXAMPLE END */

static const cvg_bytes_t NO_BYTES = {NULL, 0};

/* The token of one write's delta. */
static cvg_bytes_t delta_token(cvg_bytes_t delta) {
  cvg_bytes_t t = {NULL, 0};
  OK(cvg_delta_token(delta.ptr, delta.len, &t));
  CHECK(t.len > 0);
  return t;
}

static cvg_bytes_t join(cvg_bytes_t a, cvg_bytes_t b) {
  cvg_bytes_t t = {NULL, 0};
  OK(cvg_token_join(a.ptr, a.len, b.ptr, b.len, &t));
  return t;
}

static cvg_bytes_t context(const cvg_engine_t *e) {
  cvg_bytes_t t = {NULL, 0};
  OK(cvg_engine_context(e, &t));
  return t;
}

static uint64_t missing(const cvg_engine_t *e, cvg_bytes_t token) {
  uint64_t n = UINT64_MAX;
  OK(cvg_engine_token_missing(e, token.ptr, token.len, &n));
  return n;
}

static int64_t counter(const cvg_engine_t *e, const char *key) {
  int64_t v = -1;
  OK(cvg_engine_counter_value(e, (const uint8_t *)key, strlen(key), &v));
  return v;
}

static int same(cvg_bytes_t a, cvg_bytes_t b) {
  return bytes_eq(a.ptr, a.len, b.ptr, b.len);
}

/* The calling thread's last error message contains `text`. */
static int message_has(const char *text) {
  char msg[512];
  cvg_last_error_message(msg, sizeof msg);
  return strstr(msg, text) != NULL;
}

static void pause_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* Write at A, read at B: B says "not yet" until it merged the write. */
static void test_read_your_writes(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-ryw-a", 0x31);
  cvg_engine_t *b = open_engine(base, "tok-ryw-b", 0x32);
  cvg_engine_t *c = open_engine(base, "tok-ryw-c", 0x33);
  cvg_bytes_t d = {NULL, 0}, t, state = {NULL, 0}, tb;
  bool found = false;

  OK(cvg_engine_increment(a, S("likes"), 5, &d));
  t = delta_token(d);
  /* The writer holds its own write at once. */
  OK(cvg_engine_wait_for(a, t.ptr, t.len, 0));
  CHECK(missing(a, t) == 0);
  /* B does not: a typed "not yet", at once or after a bounded wait. */
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(b, t.ptr, t.len, 0));
  CHECK(message_has("lacks 1 "));
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(b, t.ptr, t.len, 20));
  CHECK(missing(b, t) == 1);
  CHECK(counter(b, "likes") == 0);
  /* Merging the delta makes it visible, and the read sees the write. */
  OK(cvg_engine_merge(b, S("likes"), d.ptr, d.len));
  OK(cvg_engine_wait_for(b, t.ptr, t.len, 0));
  OK(cvg_engine_wait_for(b, t.ptr, t.len, CVG_WAIT_FOREVER)); /* at once */
  CHECK(missing(b, t) == 0);
  CHECK(counter(b, "likes") == 5);
  /* B's context now holds A's write, so it is visible wherever A's is. */
  tb = context(b);
  OK(cvg_engine_wait_for(a, tb.ptr, tb.len, 0));

  /* A full state carries no operations: C holds the data after merging
   * it, but the record does not claim the write (documented). */
  OK(cvg_engine_state_bytes(a, S("likes"), &found, &state));
  CHECK(found);
  OK(cvg_engine_merge(c, S("likes"), state.ptr, state.len));
  CHECK(counter(c, "likes") == 5);
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(c, t.ptr, t.len, 0));
  /* ... and a state has no token. */
  {
    cvg_bytes_t out = {NULL, 0};
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_delta_token(state.ptr, state.len, &out));
    CHECK(out.ptr == NULL && out.len == 0);
  }
  /* The delta itself still makes it visible there. */
  OK(cvg_engine_merge(c, S("likes"), d.ptr, d.len));
  OK(cvg_engine_wait_for(c, t.ptr, t.len, 0));
  CHECK(counter(c, "likes") == 5);

  cvg_bytes_free(&d);
  cvg_bytes_free(&t);
  cvg_bytes_free(&tb);
  cvg_bytes_free(&state);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(c));
}

/* Two increments at A; B, lagging, has only the first. A client that read
 * at A keeps A's context as its token: B refuses to serve it an older
 * value until the second delta arrives. */
static void test_monotonic_reads(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-mono-a", 0x41);
  cvg_engine_t *b = open_engine(base, "tok-mono-b", 0x42);
  cvg_bytes_t d1 = {NULL, 0}, d2 = {NULL, 0}, seen, ca, cb, local;

  OK(cvg_engine_increment(a, S("views"), 1, &d1));
  OK(cvg_engine_increment(a, S("views"), 1, &d2));
  OK(cvg_engine_merge(b, S("views"), d1.ptr, d1.len));

  /* The client reads 2 at A and keeps the context it read at. */
  seen = context(a);
  CHECK(counter(a, "views") == 2);
  /* At B a plain read would go back in time (1); the token says so. */
  CHECK(counter(b, "views") == 1);
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(b, seen.ptr, seen.len, 0));
  CHECK(missing(b, seen) == 1);
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(b, seen.ptr, seen.len, 10));
  /* Merging the first delta again changes nothing. */
  OK(cvg_engine_merge(b, S("views"), d1.ptr, d1.len));
  CHECK(missing(b, seen) == 1);
  /* The second delta arrives: B may serve the client now. */
  OK(cvg_engine_merge(b, S("views"), d2.ptr, d2.len));
  OK(cvg_engine_wait_for(b, seen.ptr, seen.len, 0));
  CHECK(counter(b, "views") == 2);

  /* Both hold the same operations: equal contexts encode equally. */
  ca = context(a);
  cb = context(b);
  CHECK(same(ca, cb) && same(ca, seen));
  /* A local write at B is in B's context, not in A's. */
  OK(cvg_engine_increment(b, S("views"), 1, NULL));
  local = context(b);
  CHECK(missing(a, local) == 1 && missing(b, local) == 0);
  CHECK(!same(local, cb));

  cvg_bytes_free(&d1);
  cvg_bytes_free(&d2);
  cvg_bytes_free(&seen);
  cvg_bytes_free(&ca);
  cvg_bytes_free(&cb);
  cvg_bytes_free(&local);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

/* A thread waiting on a token, then reading. */
struct waiter {
  const cvg_engine_t *engine;
  cvg_bytes_t token;
  uint64_t timeout_ms;
  cvg_status_t status;
  int64_t seen;
  int lacks_one; /* on failure: the message says one operation is missing */
  pthread_mutex_t *lock;
  pthread_cond_t *cond;
  int *started;
};

static void *wait_then_read(void *arg) {
  struct waiter *w = (struct waiter *)arg;
  pthread_mutex_lock(w->lock);
  (*w->started)++;
  pthread_cond_signal(w->cond);
  pthread_mutex_unlock(w->lock);
  w->status = cvg_engine_wait_for(w->engine, w->token.ptr, w->token.len, w->timeout_ms);
  if (w->status == CVG_STATUS_OK) {
    if (cvg_engine_counter_value(w->engine, S("wake"), &w->seen) != CVG_STATUS_OK)
      w->seen = -1;
  } else {
    w->lacks_one = message_has("lacks 1 ");
  }
  return NULL;
}

/* Waiters on B, woken by merges made on this thread: one with a generous
 * timeout, one without limit, both needing two deltas (the first merge
 * must not release them), and one whose token never arrives. */
static void test_waiters_woken_by_merges(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-wait-a", 0x51);
  cvg_engine_t *b = open_engine(base, "tok-wait-b", 0x52);
  cvg_bytes_t d1 = {NULL, 0}, d2 = {NULL, 0}, d3 = {NULL, 0};
  cvg_bytes_t t1, t2, both, never;
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  int started = 0, i;
  struct waiter w[3];
  pthread_t th[3];

  OK(cvg_engine_increment(a, S("wake"), 1, &d1));
  OK(cvg_engine_increment(a, S("wake"), 2, &d2));
  OK(cvg_engine_increment(a, S("other"), 1, &d3));
  t1 = delta_token(d1);
  t2 = delta_token(d2);
  both = join(t1, t2);
  never = delta_token(d3);
  CHECK(missing(b, both) == 2);

  for (i = 0; i < 3; i++) {
    w[i].engine = b;
    w[i].token = i < 2 ? both : never;
    w[i].status = CVG_STATUS_PANIC;
    w[i].seen = -1;
    w[i].lacks_one = 0;
    w[i].lock = &lock;
    w[i].cond = &cond;
    w[i].started = &started;
  }
  w[0].timeout_ms = 120000; /* generous: only a lost wake-up reaches it */
  w[1].timeout_ms = CVG_WAIT_FOREVER;
  w[2].timeout_ms = 30;
  for (i = 0; i < 3; i++)
    CHECK(pthread_create(&th[i], NULL, wait_then_read, &w[i]) == 0);
  pthread_mutex_lock(&lock);
  while (started < 3)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  /* Give the waiters time to block (the test is correct without it: a
   * waiter that starts late finds the token held). */
  pause_ms(100);
  OK(cvg_engine_merge(b, S("wake"), d1.ptr, d1.len));
  pause_ms(50);
  OK(cvg_engine_merge(b, S("wake"), d2.ptr, d2.len));
  for (i = 0; i < 3; i++)
    CHECK(pthread_join(th[i], NULL) == 0);

  /* Woken, and the read after the wait sees both writes. */
  CHECK(w[0].status == CVG_STATUS_OK && w[0].seen == 3);
  CHECK(w[1].status == CVG_STATUS_OK && w[1].seen == 3);
  /* The third timed out with its typed status, the others unaffected. */
  CHECK(w[2].status == CVG_STATUS_NOT_YET_VISIBLE && w[2].lacks_one);
  CHECK(missing(b, never) == 1);

  cvg_bytes_free(&d1);
  cvg_bytes_free(&d2);
  cvg_bytes_free(&d3);
  cvg_bytes_free(&t1);
  cvg_bytes_free(&t2);
  cvg_bytes_free(&both);
  cvg_bytes_free(&never);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

/* Every bad token is CVG_STATUS_CORRUPT_INPUT for every call taking one;
 * outputs and the engine stay as they were. */
static void expect_corrupt_token(const cvg_engine_t *e, const uint8_t *bad, size_t len,
                                 cvg_bytes_t good) {
  uint64_t n = 777;
  cvg_bytes_t out = {(uint8_t *)&n, 1234}; /* sentinel: must stay */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_wait_for(e, bad, len, 0));
  /* Refused before any wait. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_wait_for(e, bad, len, CVG_WAIT_FOREVER));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_engine_token_missing(e, bad, len, &n));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_token_join(bad, len, good.ptr, good.len, &out));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_token_join(good.ptr, good.len, bad, len, &out));
  CHECK(n == 777 && out.ptr == (uint8_t *)&n && out.len == 1234);
}

static void test_bad_tokens(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-bad-a", 0x61);
  cvg_bytes_t d = {NULL, 0}, good, before, after, out = {NULL, 0}, empty;
  uint8_t buf[256];
  size_t i;
  uint64_t n = 0;
  cvg_deltas_t *ds = NULL;
  cvg_batch_t *batch = cvg_batch_new();

  OK(cvg_engine_increment(a, S("x"), 1, &d));
  OK(cvg_engine_increment(a, S("x"), 1, NULL));
  good = context(a);
  before = context(a);
  CHECK(good.len > 8 && good.len < sizeof buf);

  /* Every truncation, every single-bit flip, one trailing byte. */
  for (i = 0; i < good.len; i++)
    expect_corrupt_token(a, good.ptr, i == 0 ? 1 : i, good);
  for (i = 0; i < good.len * 8; i++) {
    memcpy(buf, good.ptr, good.len);
    buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    expect_corrupt_token(a, buf, good.len, good);
  }
  memcpy(buf, good.ptr, good.len);
  buf[good.len] = 0;
  expect_corrupt_token(a, buf, good.len + 1, good);
  /* Garbage, and a delta where a token belongs. */
  expect_corrupt_token(a, S("not a token at all"), good);
  expect_corrupt_token(a, d.ptr, d.len, good);
  /* A token where a delta belongs, garbage deltas. */
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_delta_token(good.ptr, good.len, &out));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_delta_token(d.ptr, d.len - 1, &out));
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_delta_token(NULL, 0, &out));
  CHECK(out.ptr == NULL && out.len == 0);
  /* Nothing changed. */
  after = context(a);
  CHECK(same(before, after));
  CHECK(counter(a, "x") == 2);

  /* NULL pointers. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_context(NULL, &out));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_context(a, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_wait_for(NULL, good.ptr, good.len, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_wait_for(a, NULL, 5, 0));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_token_missing(NULL, NULL, 0, &n));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_engine_token_missing(a, good.ptr, good.len, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_token_join(NULL, 3, NULL, 0, &out));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_token_join(good.ptr, good.len, NULL, 0, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_delta_token(NULL, 3, &out));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_delta_token(d.ptr, d.len, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_deltas_token(NULL, &out));
  OK(cvg_batch_increment(batch, S("x"), 1));
  OK(cvg_engine_write(a, batch, &ds));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_deltas_token(ds, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_token_of_deltas(NULL, 3, NULL, 0, &out));
  CHECK(out.ptr == NULL && out.len == 0);

  /* The empty token: (NULL, 0), always held; its encoding is canonical. */
  OK(cvg_engine_wait_for(a, NULL, 0, 0));
  OK(cvg_engine_token_missing(a, NULL, 0, &n));
  CHECK(n == 0);
  OK(cvg_token_join(NULL, 0, NULL, 0, &empty));
  CHECK(empty.len > 0);
  OK(cvg_engine_wait_for(a, empty.ptr, empty.len, 0));
  OK(cvg_token_of_deltas(NULL, 0, NULL, 0, &out));
  CHECK(same(out, empty));
  cvg_bytes_free(&out);

  cvg_deltas_free(ds);
  cvg_batch_free(batch);
  cvg_bytes_free(&d);
  cvg_bytes_free(&good);
  cvg_bytes_free(&before);
  cvg_bytes_free(&after);
  cvg_bytes_free(&empty);
  OK(cvg_engine_close(a));
}

/* Joins: commutative, idempotent, the empty token is neutral; a third
 * replica holds a join once it holds both parts. */
static void test_join(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-join-a", 0x71);
  cvg_engine_t *b = open_engine(base, "tok-join-b", 0x72);
  cvg_engine_t *c = open_engine(base, "tok-join-c", 0x73);
  cvg_bytes_t da = {NULL, 0}, db = {NULL, 0}, ta, tb, ab, ba, aba, a0, ctx;

  OK(cvg_engine_orset_add(a, S("cart"), S("tv"), &da));
  OK(cvg_engine_orset_add(b, S("cart"), S("radio"), &db));
  ta = delta_token(da);
  tb = delta_token(db);
  ab = join(ta, tb);
  ba = join(tb, ta);
  aba = join(ab, ta);
  a0 = join(ta, NO_BYTES);
  CHECK(same(ab, ba) && same(ab, aba) && same(a0, ta) && !same(ab, ta));

  CHECK(missing(c, ab) == 2);
  OK(cvg_engine_merge(c, S("cart"), da.ptr, da.len));
  CHECK(missing(c, ab) == 1);
  OK(cvg_engine_wait_for(c, ta.ptr, ta.len, 0));
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(c, ab.ptr, ab.len, 0));
  OK(cvg_engine_merge(c, S("cart"), db.ptr, db.len));
  OK(cvg_engine_wait_for(c, ab.ptr, ab.len, 0));
  /* C's context is exactly the join here. */
  ctx = context(c);
  CHECK(same(ctx, ab));

  cvg_bytes_free(&da);
  cvg_bytes_free(&db);
  cvg_bytes_free(&ta);
  cvg_bytes_free(&tb);
  cvg_bytes_free(&ab);
  cvg_bytes_free(&ba);
  cvg_bytes_free(&aba);
  cvg_bytes_free(&a0);
  cvg_bytes_free(&ctx);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(c));
}

/* The token of a batch write: every local operation (not the peer's delta
 * it merged), equal to the join of its deltas' tokens and to the token of
 * its packed deltas. */
static void test_batch_tokens(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-batch-a", 0x81);
  cvg_engine_t *b = open_engine(base, "tok-batch-b", 0x82);
  cvg_engine_t *p = open_engine(base, "tok-batch-peer", 0x83);
  cvg_batch_t *batch = cvg_batch_new();
  cvg_deltas_t *ds = NULL, *none = NULL;
  cvg_bytes_t peer = {NULL, 0}, bt = {NULL, 0}, folded = {NULL, 0}, pt = {NULL, 0};
  cvg_bytes_t mt = {NULL, 0}, empty = {NULL, 0};
  cvg_slice_t kbuf, dbuf;
  const cvg_span_t *kspans = NULL, *dspans = NULL;
  size_t n = 0, i, lens[3];

  OK(cvg_engine_increment(p, S("peer"), 1, &peer));
  OK(cvg_batch_increment(batch, S("k1"), 1));
  OK(cvg_batch_merge(batch, S("peer"), peer.ptr, peer.len));
  OK(cvg_batch_increment(batch, S("k2"), 2));
  OK(cvg_batch_orset_add(batch, S("s"), S("x")));
  OK(cvg_engine_write(a, batch, &ds));
  CHECK(cvg_deltas_len(ds) == 3);
  OK(cvg_deltas_token(ds, &bt));
  /* The peer's operation is held at A but is not this write's. */
  {
    cvg_bytes_t tp = delta_token(peer);
    OK(cvg_engine_wait_for(a, tp.ptr, tp.len, 0));
    CHECK(missing(b, bt) == 3);
    OK(cvg_engine_merge(b, S("peer"), peer.ptr, peer.len));
    CHECK(missing(b, bt) == 3);
    cvg_bytes_free(&tp);
  }
  for (i = 0; i < cvg_deltas_len(ds); i++) {
    cvg_slice_t k, d;
    cvg_bytes_t t = {NULL, 0}, next;
    OK(cvg_deltas_get(ds, i, &k, &d));
    OK(cvg_delta_token(d.ptr, d.len, &t));
    next = join(folded, t);
    cvg_bytes_free(&folded);
    cvg_bytes_free(&t);
    folded = next;
  }
  CHECK(same(folded, bt));
  OK(cvg_deltas_packed(ds, &kbuf, &kspans, &dbuf, &dspans, &n));
  CHECK(n == 3);
  for (i = 0; i < n; i++)
    lens[i] = dspans[i].len;
  OK(cvg_token_of_deltas(dbuf.ptr, dbuf.len, lens, n, &pt));
  CHECK(same(pt, bt));
  /* Lengths that do not add up, and a state among deltas: refused. */
  lens[2] += 1;
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_token_of_deltas(dbuf.ptr, dbuf.len, lens, n, &mt));
  lens[2] -= 1;
  {
    cvg_bytes_t state = {NULL, 0};
    bool found = false;
    uint8_t *packed;
    size_t plens[2];
    OK(cvg_engine_state_bytes(a, S("k1"), &found, &state));
    packed = (uint8_t *)malloc(lens[0] + state.len);
    CHECK(packed != NULL);
    memcpy(packed, dbuf.ptr, lens[0]);
    memcpy(packed + lens[0], state.ptr, state.len);
    plens[0] = lens[0];
    plens[1] = state.len;
    EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
               cvg_token_of_deltas(packed, lens[0] + state.len, plens, 2, &mt));
    CHECK(message_has("delta 1:"));
    packed[lens[0] - 1] ^= 1; /* damage delta 0 */
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT,
               cvg_token_of_deltas(packed, lens[0] + state.len, plens, 2, &mt));
    CHECK(message_has("delta 0:"));
    CHECK(mt.ptr == NULL);
    free(packed);
    cvg_bytes_free(&state);
  }

  /* Shipped to B in one batch, the write becomes visible there. */
  {
    cvg_batch_t *remote = cvg_batch_new();
    size_t klens[3];
    for (i = 0; i < n; i++)
      klens[i] = kspans[i].len;
    OK(cvg_batch_merge_many(remote, kbuf.ptr, kbuf.len, klens, dbuf.ptr, dbuf.len, lens, n));
    EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, cvg_engine_wait_for(b, bt.ptr, bt.len, 0));
    OK(cvg_engine_write(b, remote, NULL));
    OK(cvg_engine_wait_for(b, bt.ptr, bt.len, 0));
    CHECK(counter(b, "k2") == 2);
    cvg_batch_free(remote);
  }

  /* A batch of merges only: no operation of its own, the empty token. */
  OK(cvg_batch_clear(batch));
  OK(cvg_batch_merge(batch, S("peer"), peer.ptr, peer.len));
  OK(cvg_engine_write(b, batch, &none));
  CHECK(cvg_deltas_len(none) == 0);
  OK(cvg_deltas_token(none, &mt));
  OK(cvg_token_join(NULL, 0, NULL, 0, &empty));
  CHECK(same(mt, empty));

  cvg_deltas_free(ds);
  cvg_deltas_free(none);
  cvg_batch_free(batch);
  cvg_bytes_free(&peer);
  cvg_bytes_free(&bt);
  cvg_bytes_free(&folded);
  cvg_bytes_free(&pt);
  cvg_bytes_free(&mt);
  cvg_bytes_free(&empty);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(p));
}

/* The docs example, and its helpers driven by hand. */
static void test_doc_example(const char *base) {
  cvg_engine_t *a = open_engine(base, "tok-doc-a", 0x91);
  cvg_engine_t *b = open_engine(base, "tok-doc-b", 0x92);
  cvg_engine_t *c = open_engine(base, "tok-doc-c", 0x93);
  cvg_engine_t *d = open_engine(base, "tok-doc-d", 0x94);
  cvg_bytes_t session = {NULL, 0}, d1 = {NULL, 0}, d2 = {NULL, 0};
  int64_t likes = -1;

  /* Read-your-writes: b serves the session once it merged the write. */
  OK(cvg_engine_increment(a, S("likes"), 1, &d1));
  OK(session_wrote(&session, &d1));
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, session_read_likes(b, &session, 0, &likes));
  CHECK(likes == -1); /* outputs only on success */
  OK(cvg_engine_merge(b, S("likes"), d1.ptr, d1.len));
  OK(session_read_likes(b, &session, 0, &likes));
  CHECK(likes == 1);

  /* Monotonic reads: after reading at a (which holds a later like), the
   * session is not served by b until b has that like too. */
  OK(cvg_engine_increment(a, S("likes"), 1, &d2));
  OK(session_read_likes(a, &session, 0, &likes));
  CHECK(likes == 2);
  likes = -1;
  EXPECT_ERR(CVG_STATUS_NOT_YET_VISIBLE, session_read_likes(b, &session, 5, &likes));
  CHECK(likes == -1 && counter(b, "likes") == 1);
  OK(cvg_engine_merge(b, S("likes"), d2.ptr, d2.len));
  OK(session_read_likes(b, &session, 0, &likes));
  CHECK(likes == 2);

  /* The usage function: d never gets the likes, so c serves the reads. */
  CHECK(like_then_read(c, d) == 1);
  CHECK(like_then_read(c, d) == 2);
  CHECK(counter(d, "likes") == 0);

  cvg_bytes_free(&session);
  cvg_bytes_free(&d1);
  cvg_bytes_free(&d2);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
  OK(cvg_engine_close(c));
  OK(cvg_engine_close(d));
}

void test_tokens(const char *base) {
  CHECK(CVG_STATUS_NOT_YET_VISIBLE == 18);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_NOT_YET_VISIBLE), "CVG_STATUS_NOT_YET_VISIBLE") == 0);
  CHECK(CVG_WAIT_FOREVER == UINT64_MAX);
  test_read_your_writes(base);
  test_monotonic_reads(base);
  test_waiters_woken_by_merges(base);
  test_bad_tokens(base);
  test_join(base);
  test_batch_tokens(base);
  test_doc_example(base);
}
