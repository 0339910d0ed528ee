/* Closing an engine while other threads are inside calls on it, closing
 * from inside a merge function, and the typed storage statuses (a
 * directory locked by another open engine, a damaged store). Under ASan
 * and valgrind, a call that touched freed handle memory, or a store the
 * close did not release, fails the run. */
#include "util.h"

#include <pthread.h>

#define CLOSE_WORKERS 8

/* What the workers share: a count of the workers that have made a
 * successful call, and a condition the main thread waits on until all
 * have (so the close lands while every worker is calling in a loop). */
struct start_line {
  pthread_mutex_t lock;
  pthread_cond_t all_in;
  int entered;
};

struct close_worker {
  const cvg_engine_t *engine;
  struct start_line *start;
  int id;
  uint64_t acknowledged; /* increments that returned OK */
  cvg_status_t last;     /* the status that ended the loop */
};

static void mark_entered(struct start_line *s) {
  CHECK(pthread_mutex_lock(&s->lock) == 0);
  s->entered++;
  CHECK(pthread_cond_broadcast(&s->all_in) == 0);
  CHECK(pthread_mutex_unlock(&s->lock) == 0);
}

/* Call into the engine in a loop (writes, reads, an iterator, a wait that
 * is always satisfied) until a call returns something else than OK: that
 * must be CVG_STATUS_CLOSED. */
static void *call_until_closed(void *arg) {
  struct close_worker *w = (struct close_worker *)arg;
  const cvg_engine_t *e = w->engine;
  uint8_t member[2] = {'m', (uint8_t)w->id};
  int64_t value = 0;
  bool has = false;
  cvg_iter_t *it = NULL;
  cvg_status_t st;
  unsigned round;

  for (round = 0;; round++) {
    st = cvg_engine_increment(e, S("hits"), 1, NULL);
    if (st != CVG_STATUS_OK)
      break;
    w->acknowledged++;
    if (round == 0)
      mark_entered(w->start);
    st = cvg_engine_counter_value(e, S("hits"), &value);
    if (st != CVG_STATUS_OK)
      break;
    st = cvg_engine_gset_add(e, S("members"), member, sizeof member, NULL);
    if (st != CVG_STATUS_OK)
      break;
    st = cvg_engine_wait_for(e, NULL, 0, 1000);
    if (st != CVG_STATUS_OK)
      break;
    if (round % 16 == 0) {
      /* An iterator keeps the store open; it works after the close too. */
      st = cvg_engine_keys(e, NULL, 0, &it);
      if (st != CVG_STATUS_OK)
        break;
      OK(cvg_iter_next(it, &has, NULL, NULL));
      CHECK(has);
      cvg_iter_free(it);
      it = NULL;
    }
  }
  w->last = st;
  return NULL;
}

/* Two threads close while eight call: one close wins, every worker's
 * loop ends with CLOSED, later calls and closes are CLOSED, and the store
 * is released once the last call has returned. */
static void test_close_while_calls_run(const char *base) {
  char path[1024];
  struct start_line start;
  struct close_worker w[CLOSE_WORKERS];
  pthread_t th[CLOSE_WORKERS];
  cvg_engine_t *e = open_engine(base, "close-race", 0x51);
  cvg_engine_t *again = NULL;
  uint64_t acknowledged = 0;
  int64_t value = -1;
  int i;

  snprintf(path, sizeof path, "%s/close-race", base);
  CHECK(pthread_mutex_init(&start.lock, NULL) == 0);
  CHECK(pthread_cond_init(&start.all_in, NULL) == 0);
  start.entered = 0;
  for (i = 0; i < CLOSE_WORKERS; i++) {
    w[i].engine = e;
    w[i].start = &start;
    w[i].id = i;
    w[i].acknowledged = 0;
    w[i].last = CVG_STATUS_OK;
    CHECK(pthread_create(&th[i], NULL, call_until_closed, &w[i]) == 0);
  }
  CHECK(pthread_mutex_lock(&start.lock) == 0);
  while (start.entered < CLOSE_WORKERS)
    CHECK(pthread_cond_wait(&start.all_in, &start.lock) == 0);
  CHECK(pthread_mutex_unlock(&start.lock) == 0);

  /* The close: OK, or INVALID_ARGUMENT if it met no call running but a
   * worker's iterator open (the iterator then closes the store). */
  {
    cvg_status_t st = cvg_engine_close(e);
    CHECK(st == CVG_STATUS_OK || st == CVG_STATUS_INVALID_ARGUMENT);
  }
  for (i = 0; i < CLOSE_WORKERS; i++) {
    CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(w[i].last == CVG_STATUS_CLOSED);
    acknowledged += w[i].acknowledged;
  }
  CHECK(pthread_cond_destroy(&start.all_in) == 0);
  CHECK(pthread_mutex_destroy(&start.lock) == 0);

  /* The handle names a closed engine for good. */
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_close(e));
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_counter_value(e, S("hits"), &value));
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_flush(e));
  CHECK(value == -1);

  /* Every acknowledged increment is in the reopened store. */
  OK(cvg_engine_open(path, NULL, &again));
  OK(cvg_engine_counter_value(again, S("hits"), &value));
  CHECK(value >= 0 && (uint64_t)value == acknowledged);
  OK(cvg_engine_close(again));
}

struct closing_resolve {
  const cvg_engine_t *engine;
  cvg_status_t inside; /* a call made after the close, inside the callback */
};

static int close_then_merge(void *user_data, const cvg_sibling_t *siblings,
                            size_t count, cvg_buffer_t *out) {
  struct closing_resolve *r = (struct closing_resolve *)user_data;
  if (cvg_engine_close(r->engine) != CVG_STATUS_OK)
    return 1;
  r->inside = cvg_engine_flush(r->engine);
  (void)count;
  return cvg_buffer_append(out, siblings[0].value.ptr, siblings[0].value.len) ==
                 CVG_STATUS_OK
             ? 0
             : 1;
}

/* A merge function may close the engine it runs on: the resolve finishes
 * and the store closes as it returns. */
static void test_close_inside_a_merge_function(const char *base) {
  char path[1024];
  cvg_engine_t *a = open_engine(base, "close-mv-a", 0x52);
  cvg_engine_t *b = open_engine(base, "close-mv-b", 0x53);
  cvg_bytes_t d = {NULL, 0};
  cvg_siblings_t *sib = NULL;
  struct closing_resolve r;
  bool resolved = false;

  snprintf(path, sizeof path, "%s/close-mv-a", base);
  OK(cvg_engine_mv_write(a, S("reg"), S("x"), NULL, 0, NULL));
  OK(cvg_engine_mv_write(b, S("reg"), S("y"), NULL, 0, &d));
  OK(cvg_engine_merge(a, S("reg"), d.ptr, d.len));
  cvg_bytes_free(&d);
  r.engine = a;
  r.inside = CVG_STATUS_OK;
  OK(cvg_engine_mv_resolve(a, S("reg"), close_then_merge, &r, &resolved, NULL));
  CHECK(resolved);
  CHECK(r.inside == CVG_STATUS_CLOSED);
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_mv_read(a, S("reg"), &sib, NULL));
  /* The resolution was written, and the store was released. */
  OK(cvg_engine_open(path, NULL, &a));
  OK(cvg_engine_mv_read(a, S("reg"), &sib, NULL));
  CHECK(cvg_siblings_len(sib) == 1);
  cvg_siblings_free(sib);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}

/* Deterministic: a merge function holds a call inside the library while
 * the main thread closes the engine, and another thread waits for a token
 * that never comes. The close returns at once; the resolution then
 * finishes and is written; the wait is woken with CLOSED; the store is
 * released after both. (A close that freed the engine under the running
 * resolve made it read freed memory.) */
struct held_resolve {
  const cvg_engine_t *engine;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int inside, closed;
  cvg_status_t resolve_status;
  const uint8_t *token;
  size_t token_len;
  cvg_status_t wait_status;
};

static int merge_when_closed(void *user_data, const cvg_sibling_t *siblings,
                             size_t count, cvg_buffer_t *out) {
  struct held_resolve *h = (struct held_resolve *)user_data;
  (void)siblings;
  (void)count;
  CHECK(pthread_mutex_lock(&h->lock) == 0);
  h->inside = 1;
  CHECK(pthread_cond_broadcast(&h->changed) == 0);
  while (!h->closed)
    CHECK(pthread_cond_wait(&h->changed, &h->lock) == 0);
  CHECK(pthread_mutex_unlock(&h->lock) == 0);
  return cvg_buffer_append(out, S("merged")) == CVG_STATUS_OK ? 0 : 1;
}

static void *resolve_held(void *arg) {
  struct held_resolve *h = (struct held_resolve *)arg;
  bool resolved = false;
  h->resolve_status =
      cvg_engine_mv_resolve(h->engine, S("reg"), merge_when_closed, h, &resolved, NULL);
  CHECK(h->resolve_status != CVG_STATUS_OK || resolved);
  return NULL;
}

static void *wait_for_never(void *arg) {
  struct held_resolve *h = (struct held_resolve *)arg;
  h->wait_status = cvg_engine_wait_for(h->engine, h->token, h->token_len, 600000);
  return NULL;
}

static void test_close_while_a_call_is_held_inside(const char *base) {
  char path[1024];
  cvg_engine_t *e = open_engine(base, "close-held", 0x55);
  cvg_engine_t *peer = open_engine(base, "close-held-peer", 0x56);
  cvg_bytes_t d = {NULL, 0}, token = {NULL, 0};
  cvg_siblings_t *sib = NULL;
  cvg_sibling_t one;
  struct held_resolve h;
  pthread_t resolver, waiter;

  snprintf(path, sizeof path, "%s/close-held", base);
  OK(cvg_engine_mv_write(e, S("reg"), S("x"), NULL, 0, NULL));
  OK(cvg_engine_mv_write(peer, S("reg"), S("y"), NULL, 0, &d));
  OK(cvg_engine_merge(e, S("reg"), d.ptr, d.len));
  cvg_bytes_free(&d);
  /* A token of a write `e` never receives. */
  OK(cvg_engine_increment(peer, S("elsewhere"), 1, &d));
  OK(cvg_delta_token(d.ptr, d.len, &token));
  cvg_bytes_free(&d);
  OK(cvg_engine_close(peer));

  h.engine = e;
  CHECK(pthread_mutex_init(&h.lock, NULL) == 0);
  CHECK(pthread_cond_init(&h.changed, NULL) == 0);
  h.inside = h.closed = 0;
  h.resolve_status = h.wait_status = CVG_STATUS_PANIC;
  h.token = token.ptr;
  h.token_len = token.len;
  CHECK(pthread_create(&resolver, NULL, resolve_held, &h) == 0);
  CHECK(pthread_create(&waiter, NULL, wait_for_never, &h) == 0);
  CHECK(pthread_mutex_lock(&h.lock) == 0);
  while (!h.inside)
    CHECK(pthread_cond_wait(&h.changed, &h.lock) == 0);
  CHECK(pthread_mutex_unlock(&h.lock) == 0);

  OK(cvg_engine_close(e)); /* the resolve is inside: the store stays open */
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_flush(e));

  CHECK(pthread_mutex_lock(&h.lock) == 0);
  h.closed = 1;
  CHECK(pthread_cond_broadcast(&h.changed) == 0);
  CHECK(pthread_mutex_unlock(&h.lock) == 0);
  CHECK(pthread_join(resolver, NULL) == 0);
  CHECK(pthread_join(waiter, NULL) == 0);
  CHECK(h.resolve_status == CVG_STATUS_OK);
  CHECK(h.wait_status == CVG_STATUS_CLOSED);
  CHECK(pthread_cond_destroy(&h.changed) == 0);
  CHECK(pthread_mutex_destroy(&h.lock) == 0);
  cvg_bytes_free(&token);

  OK(cvg_engine_open(path, NULL, &e));
  OK(cvg_engine_mv_read(e, S("reg"), &sib, NULL));
  CHECK(cvg_siblings_len(sib) == 1);
  OK(cvg_siblings_get(sib, 0, &one));
  CHECK(slice_is(one.value, "merged"));
  cvg_siblings_free(sib);
  OK(cvg_engine_close(e));
}

/* The storage statuses keep RocksDB's kind. */
static void test_storage_statuses(const char *base) {
  char path[1024], current[1100];
  cvg_engine_t *e = open_engine(base, "locked", 0x54);
  cvg_engine_t *again = NULL;
  FILE *f;

  snprintf(path, sizeof path, "%s/locked", base);
  /* A second open of an open directory: the LOCK file is held. */
  EXPECT_ERR(CVG_STATUS_LOCKED, cvg_engine_open(path, NULL, &again));
  CHECK(again == NULL);
  OK(cvg_engine_increment(e, S("n"), 1, NULL));
  OK(cvg_engine_close(e));

  /* A damaged CURRENT file (it names the live MANIFEST). */
  snprintf(current, sizeof current, "%s/CURRENT", path);
  f = fopen(current, "wb");
  CHECK(f != NULL);
  CHECK(fputs("MANIFEST-damaged", f) >= 0);
  CHECK(fclose(f) == 0);
  EXPECT_ERR(CVG_STATUS_CORRUPTION, cvg_engine_open(path, NULL, &again));
  CHECK(again == NULL);
}

void test_close(const char *base) {
  CHECK(CVG_STATUS_CLOSED == 21 && CVG_STATUS_LOCKED == 22 &&
        CVG_STATUS_IO == 23 && CVG_STATUS_BUSY == 24 &&
        CVG_STATUS_NO_SPACE == 25);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_CLOSED), "CVG_STATUS_CLOSED") == 0);
  CHECK(strcmp(cvg_status_name(CVG_STATUS_NO_SPACE), "CVG_STATUS_NO_SPACE") == 0);
  test_close_while_calls_run(base);
  test_close_while_a_call_is_held_inside(base);
  test_close_inside_a_merge_function(base);
  test_storage_statuses(base);
}
