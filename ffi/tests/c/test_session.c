/* Anti-entropy sync sessions over byte messages: two diverged engines
 * converge through messages carried by this program (the "transport"),
 * through cvg_sync_engines, and bad or out-of-sequence messages end a
 * session with their status. */
#include "util.h"

/* Deliver every message of `msgs` to `to`; append the replies to `out`. */
static void deliver(cvg_sync_t *to, cvg_list_t *msgs, cvg_list_t **out,
                    size_t *n_out) {
  size_t i;
  *n_out = 0;
  *out = NULL;
  for (i = 0; i < cvg_list_len(msgs); i++) {
    cvg_slice_t m;
    cvg_list_t *replies = NULL;
    OK(cvg_list_get(msgs, i, &m));
    OK(cvg_sync_handle(to, m.ptr, m.len, &replies));
    /* At most one flight answers a flight here: keep the last non-empty. */
    if (cvg_list_len(replies) > 0) {
      cvg_list_free(*out);
      *out = replies;
      *n_out = cvg_list_len(replies);
    } else {
      cvg_list_free(replies);
    }
  }
}

static void diverge(const cvg_engine_t *a, const cvg_engine_t *b) {
  int i;
  for (i = 0; i < 40; i++) {
    char key[16];
    int len = snprintf(key, sizeof key, "k%d", i);
    cvg_bytes_t d = {NULL, 0};
    OK(cvg_engine_increment(a, (const uint8_t *)key, (size_t)len, 1, &d));
    OK(cvg_engine_merge(b, (const uint8_t *)key, (size_t)len, d.ptr, d.len));
    cvg_bytes_free(&d);
  }
  OK(cvg_engine_increment(a, S("k3"), 5, NULL));
  OK(cvg_engine_orset_add(b, S("only-b"), S("x"), NULL));
  OK(cvg_engine_lww_set(a, S("only-a"), S("v"), NULL));
}

static void same_roots(const cvg_engine_t *a, const cvg_engine_t *b) {
  cvg_root_t ra, rb;
  OK(cvg_engine_root(a, &ra));
  OK(cvg_engine_root(b, &rb));
  CHECK(ra.count == rb.count && memcmp(ra.hash, rb.hash, 16) == 0);
}

void test_sync_sessions(const char *base) {
  cvg_engine_t *a = open_engine(base, "sync-a", 0x21);
  cvg_engine_t *b = open_engine(base, "sync-b", 0x22);
  cvg_sync_config_t cfg = cvg_sync_config_default();
  cvg_sync_t *sa = NULL, *sb = NULL;
  cvg_bytes_t first = {NULL, 0};
  cvg_list_t *to_b = NULL, *to_a = NULL;
  cvg_sync_outcome_t oa = 99, ob = 99;
  cvg_sync_stats_t st;
  size_t n = 0;
  int64_t v = 0;
  int rounds = 0;

  CHECK(cfg.message_budget > 0 && cfg.max_message >= cfg.message_budget);
  CHECK(cfg.use_iblt);
  diverge(a, b);

  /* Drive a session by hand: messages are opaque bytes we carry. */
  OK(cvg_sync_initiate(a, &cfg, &sa, &first));
  CHECK(first.len > 0 && first.len <= 64);
  OK(cvg_sync_respond(b, NULL, &sb));
  OK(cvg_sync_outcome(sb, &ob));
  CHECK(ob == CVG_SYNC_RUNNING);
  {
    cvg_list_t *replies = NULL;
    OK(cvg_sync_handle(sb, first.ptr, first.len, &replies));
    to_a = replies;
  }
  while (cvg_list_len(to_a) > 0 && rounds++ < 10) {
    deliver(sa, to_a, &to_b, &n);
    cvg_list_free(to_a);
    to_a = NULL;
    if (to_b == NULL)
      break;
    deliver(sb, to_b, &to_a, &n);
    cvg_list_free(to_b);
    to_b = NULL;
    if (to_a == NULL)
      break;
  }
  cvg_list_free(to_a);
  cvg_list_free(to_b);
  OK(cvg_sync_outcome(sa, &oa));
  OK(cvg_sync_outcome(sb, &ob));
  CHECK(oa == CVG_SYNC_CONVERGED && ob == CVG_SYNC_CONVERGED);
  OK(cvg_sync_stats(sa, &st));
  CHECK(st.states_sent == 2 && st.messages_sent >= 2);
  OK(cvg_sync_stats(sb, &st));
  CHECK(st.states_sent == 2);
  same_roots(a, b);
  OK(cvg_engine_counter_value(b, S("k3"), &v));
  CHECK(v == 6);

  /* A finished session refuses more messages. */
  EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL,
             cvg_sync_handle(sb, first.ptr, first.len, &to_a));
  cvg_sync_free(sa);
  cvg_sync_free(sb);

  /* Bad messages: damaged bytes, then a message out of sequence. */
  OK(cvg_sync_respond(b, NULL, &sb));
  {
    uint8_t bad[64];
    memcpy(bad, first.ptr, first.len);
    bad[first.len - 1] ^= 1;
    EXPECT_ERR(CVG_STATUS_CORRUPT_INPUT, cvg_sync_handle(sb, bad, first.len, &to_a));
    OK(cvg_sync_outcome(sb, &ob));
    CHECK(ob == CVG_SYNC_FAILED);
  }
  cvg_sync_free(sb);
  OK(cvg_sync_respond(b, NULL, &sb));
  OK(cvg_sync_handle(sb, first.ptr, first.len, &to_a));
  cvg_list_free(to_a);
  EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL, cvg_sync_handle(sb, first.ptr, first.len, &to_a));
  cvg_sync_free(sb);
  cvg_bytes_free(&first);

  /* NULL handling. */
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_initiate(NULL, NULL, &sa, &first));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_initiate(a, NULL, NULL, &first));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_respond(a, NULL, NULL));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_handle(NULL, S("x"), &to_a));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_outcome(NULL, &oa));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_stats(NULL, &st));
  cfg.message_budget = 0;
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT, cvg_sync_engines(a, b, &cfg, NULL, NULL));
  cvg_sync_free(NULL);

  /* One call, key lists instead of the IBLT. */
  OK(cvg_engine_pn_add(b, S("pn"), -4, NULL));
  cfg = cvg_sync_config_default();
  cfg.use_iblt = false;
  OK(cvg_sync_engines(a, b, &cfg, &oa, &ob));
  CHECK(oa == CVG_SYNC_CONVERGED || ob == CVG_SYNC_CONVERGED);
  same_roots(a, b);
  OK(cvg_sync_engines(a, b, NULL, &oa, &ob));
  CHECK(oa == CVG_SYNC_EQUAL && ob == CVG_SYNC_EQUAL);

  /* Pulled replies: receive, then next_message until it has none; a
   * message given while replies are waiting is out of turn. */
  {
    cvg_sync_t *pa = NULL, *pb = NULL;
    cvg_bytes_t f = {NULL, 0}, m = {NULL, 0}, none = {NULL, 0};
    bool more = false;
    uint32_t flags = 99;
    OK(cvg_engine_increment(a, S("pull"), 1, NULL));
    OK(cvg_sync_initiate(a, NULL, &pa, &f));
    OK(cvg_sync_respond(b, NULL, &pb));
    OK(cvg_sync_receive(pb, f.ptr, f.len));
    OK(cvg_sync_next_message(pb, &m, &more));
    CHECK(more && m.len > 0); /* the estimate */
    OK(cvg_sync_next_message(pb, &none, &more));
    CHECK(!more && none.len == 0);
    cvg_bytes_free(&none);
    OK(cvg_sync_receive(pa, m.ptr, m.len));
    cvg_bytes_free(&m);
    /* a has its IBLT to send: another message now is out of turn. */
    EXPECT_ERR(CVG_STATUS_SYNC_PROTOCOL, cvg_sync_receive(pa, f.ptr, f.len));
    OK(cvg_sync_outcome(pa, &oa));
    CHECK(oa == CVG_SYNC_FAILED);
    OK(cvg_sync_next_message(pa, &none, &more));
    CHECK(!more);
    cvg_bytes_free(&none);
    OK(cvg_sync_flags(pb, &flags));
    CHECK(flags == 0);
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_receive(NULL, S("x")));
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_next_message(pb, NULL, &more));
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_next_message(pb, &m, NULL));
    EXPECT_ERR(CVG_STATUS_NULL_POINTER, cvg_sync_flags(NULL, &flags));
    cvg_sync_free(pa);
    cvg_sync_free(pb);
    cvg_bytes_free(&f);
  }
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}
