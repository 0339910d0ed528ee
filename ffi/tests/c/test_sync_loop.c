/* The hand-written sync message loop of docs/C_API.md, compiled and run by
 * the suite, then the outcome pairs a session can end with: EQUAL/EQUAL,
 * CONVERGED/CONVERGED, DIVERGED/DIVERGED, FAILED/RUNNING, and the outcome
 * names. The text between the two EXAMPLE marker lines is the code block
 * of docs/C_API.md byte for byte (ffi/tests/run.sh compares them). */
#include "util.h"

/* EXAMPLE BEGIN (docs/C_API.md, "A message loop by hand") */
#include "converge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One message in flight: an owned copy of its bytes. */
typedef struct {
  uint8_t *data;
  size_t len;
} message_t;

/* The messages in flight in one direction, oldest first: the stand-in for
 * your transport. */
typedef struct {
  message_t *items;
  size_t head, tail, cap;
} queue_t;

static int queue_empty(const queue_t *q) { return q->head == q->tail; }

/* Append a copy of `len` bytes at `data` (aborts when out of memory). */
static void queue_push(queue_t *q, const uint8_t *data, size_t len) {
  message_t m;
  if (q->tail == q->cap) {
    q->cap = q->cap ? 2 * q->cap : 8;
    q->items = (message_t *)realloc(q->items, q->cap * sizeof *q->items);
    if (q->items == NULL)
      abort();
  }
  m.len = len;
  m.data = (uint8_t *)malloc(len ? len : 1);
  if (m.data == NULL)
    abort();
  if (len > 0)
    memcpy(m.data, data, len);
  q->items[q->tail++] = m;
}

static void queue_free(queue_t *q) {
  while (!queue_empty(q))
    free(q->items[q->head++].data);
  free(q->items);
}

/* Hand the oldest message of `in` to `session`, then queue every reply on
 * `out`, in order (even when this message ended the session: its last
 * replies must still be sent). */
static cvg_status_t deliver_one(cvg_sync_t *session, queue_t *in, queue_t *out) {
  message_t m = in->items[in->head++];
  cvg_status_t st = cvg_sync_receive(session, m.data, m.len);
  bool more = true;
  free(m.data);
  if (st != CVG_STATUS_OK)
    return st; /* this side is now CVG_SYNC_FAILED; the peer is not told */
  /* The replies are built as they are pulled: send each one. */
  while (st == CVG_STATUS_OK && more) {
    cvg_bytes_t reply = {NULL, 0};
    st = cvg_sync_next_message(session, &reply, &more);
    if (st == CVG_STATUS_OK && more)
      queue_push(out, reply.ptr, reply.len);
    cvg_bytes_free(&reply);
  }
  return st;
}

/* One sync session between engines `a` (the initiator) and `b`, the
 * messages carried by hand. The loop stops when no message is in flight
 * either way: both sides have then ended, unless a cvg_sync_receive failed
 * (that side is then FAILED, the other still RUNNING). On success,
 * `*outcome_a` and `*outcome_b` hold both sides' outcomes; on failure the
 * status is returned and the thread's error message tells why. */
static cvg_status_t sync_by_hand(const cvg_engine_t *a, const cvg_engine_t *b,
                                 cvg_sync_outcome_t *outcome_a,
                                 cvg_sync_outcome_t *outcome_b) {
  cvg_sync_t *sa = NULL, *sb = NULL;
  cvg_bytes_t first = {NULL, 0};
  queue_t to_a = {NULL, 0, 0, 0}, to_b = {NULL, 0, 0, 0};
  cvg_status_t st = cvg_sync_initiate(a, NULL, &sa, &first);
  if (st == CVG_STATUS_OK)
    st = cvg_sync_respond(b, NULL, &sb);
  if (st == CVG_STATUS_OK)
    queue_push(&to_b, first.ptr, first.len);
  cvg_bytes_free(&first);
  while (st == CVG_STATUS_OK && !(queue_empty(&to_a) && queue_empty(&to_b))) {
    if (!queue_empty(&to_b))
      st = deliver_one(sb, &to_b, &to_a);
    else
      st = deliver_one(sa, &to_a, &to_b);
  }
  if (st == CVG_STATUS_OK)
    st = cvg_sync_outcome(sa, outcome_a);
  if (st == CVG_STATUS_OK)
    st = cvg_sync_outcome(sb, outcome_b);
  /* Freeing never touches the error message of a failure above. */
  cvg_sync_free(sa);
  cvg_sync_free(sb);
  queue_free(&to_a);
  queue_free(&to_b);
  return st;
}

/* Usage: sync, then tell what happened. */
static int sync_and_report(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_sync_outcome_t oa = CVG_SYNC_RUNNING, ob = CVG_SYNC_RUNNING;
  cvg_status_t st = sync_by_hand(a, b, &oa, &ob);
  if (st != CVG_STATUS_OK) {
    char msg[256];
    cvg_last_error_message(msg, sizeof msg);
    fprintf(stderr, "sync failed: %s: %s\n", cvg_status_name(st), msg);
    return -1; /* start a new session later */
  }
  printf("a: %s, b: %s\n", cvg_sync_outcome_name(oa), cvg_sync_outcome_name(ob));
  if (oa == CVG_SYNC_DIVERGED || ob == CVG_SYNC_DIVERGED)
    return 1; /* written to during the session: sync again */
  return 0;   /* EQUAL/EQUAL or CONVERGED/CONVERGED: the replicas are equal */
}
/* EXAMPLE END */

static void write_apart(const cvg_engine_t *a, const cvg_engine_t *b) {
  int i;
  for (i = 0; i < 30; i++) {
    char key[16];
    int len = snprintf(key, sizeof key, "loop%d", i);
    OK(cvg_engine_increment(i % 2 ? a : b, (const uint8_t *)key, (size_t)len,
                            (uint64_t)i + 1, NULL));
  }
  OK(cvg_engine_orset_add(a, S("set"), S("from-a"), NULL));
  OK(cvg_engine_orset_add(b, S("set"), S("from-b"), NULL));
}

static int roots_equal(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_root_t ra, rb;
  OK(cvg_engine_root(a, &ra));
  OK(cvg_engine_root(b, &rb));
  return ra.count == rb.count && memcmp(ra.hash, rb.hash, 16) == 0;
}

static int is_name(cvg_sync_outcome_t o, const char *expected) {
  const char *name = cvg_sync_outcome_name(o);
  return name != NULL && strcmp(name, expected) == 0;
}

static void test_outcome_names(void) {
  CHECK(CVG_SYNC_RUNNING == 0 && CVG_SYNC_EQUAL == 1 && CVG_SYNC_REPAIRED == 2 &&
        CVG_SYNC_CONVERGED == 3 && CVG_SYNC_DIVERGED == 4 && CVG_SYNC_FAILED == 5);
  CHECK(is_name(CVG_SYNC_RUNNING, "running"));
  CHECK(is_name(CVG_SYNC_EQUAL, "equal"));
  CHECK(is_name(CVG_SYNC_REPAIRED, "repaired"));
  CHECK(is_name(CVG_SYNC_CONVERGED, "converged"));
  CHECK(is_name(CVG_SYNC_DIVERGED, "diverged"));
  CHECK(is_name(CVG_SYNC_FAILED, "failed"));
  CHECK(is_name(6, "unknown") && is_name(255, "unknown"));
  /* Static strings: the same pointer every time. */
  CHECK(cvg_sync_outcome_name(CVG_SYNC_FAILED) == cvg_sync_outcome_name(CVG_SYNC_FAILED));
}

/* Each engine receives a write just before each message reaches it, so the
 * side that checks the roots was written to after it last shipped its
 * states: both sides end DIVERGED (the checker tells the other). */
static void test_diverged_pair(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_sync_t *sa = NULL, *sb = NULL;
  cvg_bytes_t first = {NULL, 0};
  queue_t to_a = {NULL, 0, 0, 0}, to_b = {NULL, 0, 0, 0};
  cvg_sync_outcome_t oa = CVG_SYNC_RUNNING, ob = CVG_SYNC_RUNNING;
  int written = 0;

  write_apart(a, b);
  OK(cvg_sync_initiate(a, NULL, &sa, &first));
  OK(cvg_sync_respond(b, NULL, &sb));
  queue_push(&to_b, first.ptr, first.len);
  cvg_bytes_free(&first);
  while (!(queue_empty(&to_a) && queue_empty(&to_b))) {
    int to_b_next = !queue_empty(&to_b);
    OK(cvg_engine_increment(to_b_next ? b : a, S("late write"), 1, NULL));
    written++;
    if (to_b_next)
      OK(deliver_one(sb, &to_b, &to_a));
    else
      OK(deliver_one(sa, &to_a, &to_b));
  }
  CHECK(written);
  OK(cvg_sync_outcome(sa, &oa));
  OK(cvg_sync_outcome(sb, &ob));
  CHECK(oa == CVG_SYNC_DIVERGED && ob == CVG_SYNC_DIVERGED);
  /* An ended side accepts nothing more. */
  {
    cvg_list_t *replies = NULL;
    EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL, cvg_sync_handle(sa, S("late"), &replies));
    EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL, cvg_sync_handle(sb, S("late"), &replies));
    CHECK(replies == NULL);
  }
  cvg_sync_free(sa);
  cvg_sync_free(sb);
  queue_free(&to_a);
  queue_free(&to_b);
  CHECK(!roots_equal(a, b));
  /* Another session repairs it. */
  CHECK(sync_and_report(a, b) == 0);
  CHECK(roots_equal(a, b));
}

/* A damaged message: FAILED on the side that got it, RUNNING on the other,
 * and the example reports the status with both outcomes. */
static void test_failed_pair(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_sync_t *sa = NULL, *sb = NULL;
  cvg_bytes_t first = {NULL, 0};
  cvg_list_t *replies = NULL;
  cvg_sync_outcome_t oa = 99, ob = 99;
  uint8_t bad[256];

  OK(cvg_engine_increment(a, S("only a"), 1, NULL));
  OK(cvg_sync_initiate(a, NULL, &sa, &first));
  OK(cvg_sync_respond(b, NULL, &sb));
  CHECK(first.len > 0 && first.len <= sizeof bad);
  memcpy(bad, first.ptr, first.len);
  bad[first.len / 2] ^= 0x40;
  EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_sync_handle(sb, bad, first.len, &replies));
  CHECK(replies == NULL);
  OK(cvg_sync_outcome(sa, &oa));
  OK(cvg_sync_outcome(sb, &ob));
  CHECK(oa == CVG_SYNC_RUNNING && ob == CVG_SYNC_FAILED);
  /* The failed side refuses even the genuine message now. */
  EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL,
             cvg_sync_handle(sb, first.ptr, first.len, &replies));
  cvg_bytes_free(&first);
  cvg_sync_free(sa); /* an unfinished session may be freed at any point */
  cvg_sync_free(sb);
  CHECK(!roots_equal(a, b));
}

/* cvg_engine_close with a session still open reports
 * CVG_STATUS_INVALID_ARGUMENT: the engine is closed to new calls, the
 * session keeps working and keeps the store open, and freeing the session
 * closes the store. (ASan and valgrind would report a store the session
 * did not release.) */
static void test_close_with_a_session_open(const char *base, const cvg_engine_t *a) {
  char path[1024];
  cvg_engine_t *c = open_engine(base, "loop-c", 0x43);
  cvg_engine_t *again = NULL;
  cvg_sync_t *sa = NULL, *sc = NULL;
  cvg_bytes_t first = {NULL, 0};
  cvg_list_t *replies = NULL;
  cvg_sync_outcome_t o = CVG_SYNC_FAILED;

  snprintf(path, sizeof path, "%s/loop-c", base);
  OK(cvg_sync_respond(c, NULL, &sc));
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_engine_close(c));
  /* `c` is closed: calls and a second close say so. The store is still
   * open (its directory stays locked). */
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_engine_close(c));
  EXPECT_ERR(CVG_STATUS_CLOSED, cvg_sync_respond(c, NULL, &sa));
  CHECK(sa == NULL);
  EXPECT_ERR(CVG_STATUS_LOCKED, cvg_engine_open(path, NULL, &again));
  CHECK(again == NULL);
  OK(cvg_sync_initiate(a, NULL, &sa, &first));
  OK(cvg_sync_handle(sc, first.ptr, first.len, &replies));
  CHECK(cvg_list_len(replies) == 1); /* c is empty, a is not: an estimate */
  OK(cvg_sync_outcome(sc, &o));
  CHECK(o == CVG_SYNC_RUNNING);
  cvg_list_free(replies);
  cvg_bytes_free(&first);
  cvg_sync_free(sa);
  cvg_sync_free(sc); /* the last user of the store: it closes now */
  OK(cvg_engine_open(path, NULL, &again));
  OK(cvg_engine_close(again));
}

void test_sync_loop(const char *base) {
  cvg_engine_t *a = open_engine(base, "loop-a", 0x41);
  cvg_engine_t *b = open_engine(base, "loop-b", 0x42);
  cvg_sync_outcome_t oa = CVG_SYNC_RUNNING, ob = CVG_SYNC_RUNNING;
  int64_t v = 0;

  test_outcome_names();

  /* Two empty replicas: EQUAL on both sides. */
  OK(sync_by_hand(a, b, &oa, &ob));
  CHECK(oa == CVG_SYNC_EQUAL && ob == CVG_SYNC_EQUAL);

  /* Diverged replicas: CONVERGED on both sides. */
  write_apart(a, b);
  CHECK(!roots_equal(a, b));
  oa = ob = CVG_SYNC_RUNNING;
  OK(sync_by_hand(a, b, &oa, &ob));
  CHECK(oa == CVG_SYNC_CONVERGED && ob == CVG_SYNC_CONVERGED);
  CHECK(roots_equal(a, b));
  OK(cvg_engine_counter_value(a, S("loop0"), &v));
  CHECK(v == 1);
  OK(cvg_engine_counter_value(b, S("loop29"), &v));
  CHECK(v == 30);
  /* Nothing left to repair, whichever side initiates. */
  OK(sync_by_hand(b, a, &ob, &oa));
  CHECK(oa == CVG_SYNC_EQUAL && ob == CVG_SYNC_EQUAL);
  CHECK(sync_and_report(a, b) == 0);

  test_diverged_pair(a, b);
  test_failed_pair(a, b);
  CHECK(sync_and_report(b, a) == 0);
  CHECK(roots_equal(a, b));
  test_close_with_a_session_open(base, a);

  /* The example reports a failure: a NULL engine. */
  oa = ob = 99;
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, sync_by_hand(a, NULL, &oa, &ob));
  CHECK(oa == 99 && ob == 99); /* no session, no outcome */
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}
