// C++ wrapper test (two translation units with wrapper_b.cpp).
// Usage: test_wrapper <empty scratch directory>
#include "converge.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

converge::bytes offline_edit(const converge::engine &b);
std::string first_member(const converge::engine &e, const std::string &key);
int status_of_wrong_type(const converge::engine &e);
std::pair<cvg_sync_outcome_t, cvg_sync_outcome_t> sync_by_hand(const converge::engine &a,
                                                               const converge::engine &b);
int push_feed(const converge::engine &from, const converge::engine &to, converge::bytes &cursor,
              size_t limit);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                   #cond);                                                     \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

template <class F> static cvg_status_t status_of(F f) {
  try {
    f();
  } catch (const converge::error &e) {
    CHECK(std::strlen(e.what()) > 0);
    return e.status();
  }
  return CVG_STATUS_OK;
}

static converge::options opts(uint8_t id) {
  converge::replica_id r{};
  r.fill(id);
  converge::options o;
  o.replica(r).block_cache_bytes(1 << 20).write_buffer_bytes(1 << 20).background_jobs(1);
  o.compression(true).bloom_bits_per_key(10).lock_stripes(64).anti_entropy(true);
  o.max_successive_merges(0).type_cache_entries(1024).state_cache_bytes(1 << 20);
  o.create_if_missing(true);
  o.durability(CVG_DURABILITY_BUFFERED);
  return o;
}

static bool same_roots(const converge::engine &a, const converge::engine &b) {
  cvg_root_t ra = a.root(), rb = b.root();
  return ra.count == rb.count && std::memcmp(ra.hash, rb.hash, 16) == 0;
}

static bool is_success(std::pair<cvg_sync_outcome_t, cvg_sync_outcome_t> o) {
  return o.first == CVG_SYNC_CONVERGED && o.second == CVG_SYNC_CONVERGED;
}

// Bulk batch forms and packed deltas.
static void test_bulk(const converge::engine &a, const converge::engine &b) {
  converge::packed_strings keys;
  keys.push("bulk/1").push("bulk/22").push(std::string("bulk/333"));
  CHECK(keys.size() == 3 && keys.data().size() == 6 + 7 + 8);
  CHECK(keys.lengths() == std::vector<size_t>({6, 7, 8}));
  converge::batch batch;
  batch.increment_many(keys, {1, 2, 3});
  batch.pn_add_many(converge::packed_strings().push("bulk/pn").push("bulk/pn"), {-5, 2});
  CHECK(batch.size() == 5);
  // Counts that disagree are refused before the C call: nothing added.
  CHECK(status_of([&] { batch.increment_many(keys, {1, 2}); }) == CVG_STATUS_INVALID_ARGUMENT);
  CHECK(batch.size() == 5);
  batch.increment_many(converge::packed_strings(), {}); // empty: a no-op
  CHECK(batch.size() == 5);

  converge::deltas ds = a.write(batch);
  converge::packed_deltas p = ds.packed();
  CHECK(p.count == 5 && p.count == ds.size());
  for (size_t i = 0; i < p.count; i++)
    CHECK(p.key(i) == ds[i].first && p.delta(i) == ds[i].second);
  CHECK(p.key(2) == "bulk/333" && p.key(4) == "bulk/pn");
  bool threw = false;
  try {
    p.delta(5);
  } catch (const std::out_of_range &) {
    threw = true;
  }
  CHECK(threw);

  // Every delta shipped to the peer in one call.
  converge::batch remote;
  remote.merge_many(ds);
  CHECK(remote.size() == 5);
  b.apply(remote);
  CHECK(b.counter("bulk/22") == 2 && b.counter("bulk/333") == 3 && b.counter("bulk/pn") == -3);

  // Full states packed by hand; mismatched counts and bad bytes add or
  // write nothing.
  a.increment("bulk/1", 10);
  converge::packed_strings state_keys, states;
  state_keys.push("bulk/1");
  states.push(*a.state("bulk/1"));
  converge::batch merges;
  CHECK(status_of([&] { merges.merge_many(state_keys, converge::packed_strings()); }) ==
        CVG_STATUS_INVALID_ARGUMENT);
  merges.merge_many(state_keys, states);
  converge::batch bad;
  bad.merge_many(converge::packed_strings().push("bulk/22"),
                 converge::packed_strings().push("junk"));
  CHECK(status_of([&] { b.apply(bad); }) == CVG_STATUS_CORRUPT_INPUT);
  b.apply(merges);
  CHECK(b.counter("bulk/1") == 11 && b.counter("bulk/22") == 2);
}

// Sync sessions: a loop by hand, one-call syncs, the session API, names,
// and close() with a session alive.
static void test_sync(const std::string &base, const converge::options &oc,
                      const converge::options &od) {
  CHECK(std::string(converge::outcome_name(CVG_SYNC_CONVERGED)) == "converged");
  CHECK(std::string(converge::outcome_name(CVG_SYNC_RUNNING)) == "running");
  CHECK(std::string(converge::outcome_name(200)) == "unknown");
  CHECK(std::string(converge::crdt_type_name(CVG_CRDT_ORSET)) == "orset");
  CHECK(converge::crdt_type_name(99) == nullptr);
  CHECK(std::string(converge::status_name(CVG_STATUS_SYNC_PROTOCOL)) ==
        "CVG_STATUS_SYNC_PROTOCOL");

  converge::engine c(base + "/sync-c", oc);
  converge::engine d(base + "/sync-d", od);
  for (int i = 0; i < 20; i++)
    (i % 2 ? c : d).increment("k" + std::to_string(i), static_cast<uint64_t>(i) + 1);
  CHECK(!same_roots(c, d));
  CHECK(is_success(sync_by_hand(c, d)));
  CHECK(same_roots(c, d) && d.counter("k1") == 2 && c.counter("k0") == 1);
  auto equal = c.sync_with(d);
  CHECK(equal.first == CVG_SYNC_EQUAL && equal.second == CVG_SYNC_EQUAL);

  cvg_sync_config_t cfg = converge::sync_config();
  CHECK(cfg.use_iblt && cfg.message_budget > 0);
  cfg.use_iblt = false;
  cfg.message_budget = 1024;
  d.orset_add("set", "x");
  CHECK(is_success(c.sync_with(d, cfg)));
  CHECK(same_roots(c, d) && c.members("set").members.size() == 1);
  cfg.max_message = 0;
  CHECK(status_of([&] { c.sync_with(d, cfg); }) == CVG_STATUS_INVALID_ARGUMENT);

  {
    converge::sync_start s = c.sync_initiate();
    CHECK(!s.first_message.empty() && !s.session.ended());
    CHECK(s.session.outcome() == CVG_SYNC_RUNNING);
    // A damaged message ends the side that gets it; it then refuses all.
    converge::sync_session failed = d.sync_respond();
    converge::bytes damaged = s.first_message;
    damaged.back() ^= 1;
    CHECK(status_of([&] { failed.handle(damaged); }) == CVG_STATUS_CORRUPT_INPUT);
    CHECK(failed.outcome() == CVG_SYNC_FAILED && failed.ended());
    CHECK(status_of([&] { failed.handle(s.first_message); }) == CVG_STATUS_SYNC_PROTOCOL);
    // Equal replicas: one answer, both sides EQUAL.
    converge::sync_session r = d.sync_respond();
    std::vector<converge::bytes> replies = r.handle(s.first_message);
    CHECK(replies.size() == 1 && r.outcome() == CVG_SYNC_EQUAL);
    CHECK(s.session.handle(replies[0]).empty() && s.session.outcome() == CVG_SYNC_EQUAL);
    cvg_sync_stats_t st = s.session.stats();
    CHECK(st.messages_sent == 1 && st.messages_received == 1 && st.states_sent == 0);
    // Move-only: a moved-from session is empty.
    converge::sync_session moved(std::move(r));
    CHECK(moved.get() != nullptr && r.get() == nullptr);
    CHECK(status_of([&] { r.outcome(); }) == CVG_STATUS_NULL_POINTER);
  }

  // close() closes the engine whatever the status; a live session keeps
  // the store open until it goes.
  converge::sync_session alive = d.sync_respond();
  CHECK(status_of([&] { d.close(); }) == CVG_STATUS_INVALID_ARGUMENT);
  CHECK(status_of([&] { d.counter("k1"); }) == CVG_STATUS_CLOSED);
  d.close(); // a second close does nothing
  CHECK(status_of([&] { converge::engine again(base + "/sync-d"); }) == CVG_STATUS_LOCKED);
  alive = converge::sync_session(nullptr); // frees the session: the store closes
  converge::engine again(base + "/sync-d", od);
  CHECK(again.counter("k1") == 2 && again.verify_tree().consistent);
  CHECK(again.verify_tree().keys == again.root().count);
  c.close();
  again.close();
}

// Session tokens: read-your-writes and monotonic reads across two
// replicas, a waiting thread woken by a merge, joins, batch tokens, and
// bad tokens.
static void test_tokens(const std::string &base, const converge::options &oe,
                        const converge::options &of) {
  using std::chrono::milliseconds;
  CHECK(std::string(converge::status_name(CVG_STATUS_NOT_YET_VISIBLE)) ==
        "CVG_STATUS_NOT_YET_VISIBLE");
  converge::engine e(base + "/tok-e", oe);
  converge::engine f(base + "/tok-f", of);

  // Read your writes: the writer holds the token at once, the peer only
  // after merging the delta.
  converge::bytes d = e.increment("likes", 2);
  converge::bytes t = converge::delta_token(d);
  CHECK(e.wait_for(t) && e.token_missing(t) == 0);
  CHECK(!f.wait_for(t) && !f.wait_for(t, milliseconds(10)) && f.token_missing(t) == 1);
  f.merge("likes", d);
  CHECK(f.wait_for(t) && f.counter("likes") == 2);
  f.wait(t); // held: returns at once

  // Monotonic reads: f lags one increment behind; a client that read at e
  // keeps e's context and f refuses it until the second delta arrives.
  converge::bytes d1 = e.increment("views", 1), d2 = e.increment("views", 1);
  f.merge("views", d1);
  converge::bytes seen = e.context();
  CHECK(e.counter("views") == 2 && f.counter("views") == 1);
  CHECK(!f.wait_for(seen) && f.token_missing(seen) == 1);
  f.merge("views", d2);
  CHECK(f.wait_for(seen) && f.counter("views") == 2);
  CHECK(f.context() == e.context()); // the same operations, the same bytes

  // A thread waiting (generously bounded) is woken by a merge made here;
  // its read after the wait sees the write.
  converge::bytes d3 = e.increment("wake", 7);
  converge::bytes t3 = converge::delta_token(d3);
  bool woken = false;
  int64_t after = -1;
  std::thread waiter([&] {
    woken = f.wait_for(t3, std::chrono::minutes(2));
    after = f.counter("wake");
  });
  std::this_thread::sleep_for(milliseconds(50)); // likely blocked by now
  f.merge("wake", d3);
  waiter.join();
  CHECK(woken && after == 7);

  // Joins: commutative, idempotent; the empty token is neutral.
  converge::bytes tf = converge::delta_token(f.increment("likes", 1));
  converge::bytes both = converge::token_join(t3, tf);
  CHECK(both == converge::token_join(tf, t3) && both == converge::token_join(both, tf));
  CHECK(converge::token_join(tf, converge::bytes()) == tf);
  CHECK(e.token_missing(both) == 1 && f.token_missing(both) == 0);

  // A batch's token: every operation of the write, the same from the
  // deltas object and from its packed deltas.
  converge::batch b;
  b.increment("k1", 1).increment("k2", 2).orset_add("s", "x");
  converge::deltas ds = e.write(b);
  converge::bytes bt = ds.token();
  converge::packed_strings packed;
  converge::bytes folded;
  for (size_t i = 0; i < ds.size(); i++) {
    packed.push(converge::byte_view(ds[i].second));
    folded = converge::token_join(folded, converge::delta_token(converge::byte_view(ds[i].second)));
  }
  CHECK(converge::token_of(packed) == bt && folded == bt);
  CHECK(f.token_missing(bt) == 3);
  converge::batch remote;
  remote.merge_many(ds);
  f.apply(remote);
  CHECK(f.wait_for(bt) && f.counter("k2") == 2);

  // Bad tokens and deltas: typed errors, nothing changed.
  converge::bytes before = f.context();
  CHECK(status_of([&] { f.wait_for("junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { f.wait(converge::bytes(t.begin(), t.end() - 1)); }) ==
        CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { f.token_missing(d); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { converge::token_join(t, "junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { converge::delta_token(t); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { converge::delta_token(*e.state("likes")); }) ==
        CVG_STATUS_INVALID_ARGUMENT);
  CHECK(f.context() == before);
  e.close();
  f.close();
}

static converge::options feed_opts(uint8_t id, uint64_t retain, size_t max_pending) {
  converge::options o = opts(id);
  o.changes_feed(true).feed_retain_bytes(retain).max_pending(max_pending);
  o.max_pending_bytes(uint64_t(1) << 20);
  return o;
}

// Causal delivery and the changes feed: a comment never shown before its
// post, pages pushed from a cursor, a cursor older than the log, a full
// pending area, peers, bad input.
static void test_delivery(const std::string &base) {
  CHECK(std::string(converge::status_name(CVG_STATUS_PENDING_FULL)) == "CVG_STATUS_PENDING_FULL");
  CHECK(std::string(converge::delivery_name(CVG_DELIVERY_PENDING)) == "pending");
  CHECK(std::string(converge::delivery_name(9)) == "unknown");
  converge::engine a(base + "/dl-a", feed_opts(7, 16 << 10, 100000));
  converge::engine b(base + "/dl-b", opts(8));
  converge::engine c(base + "/dl-c", feed_opts(9, 64 << 20, 2));

  // The comment reaches c before the post: pending, then both visible.
  converge::bytes post = a.orset_add("post", "hello");
  b.merge("post", post);
  converge::bytes comment = b.orset_add("comment", "welcome");
  c.merge("comment", comment);
  converge::pending_info p = c.pending();
  CHECK(p.entries == 1 && p.missing == 1 && p.stuck == 0 && p.size > 0);
  CHECK(converge::token_join(p.needed, converge::delta_token(post)) == p.needed);
  CHECK(c.members("comment").members.empty());
  c.merge("post", post);
  CHECK(c.members("comment").members.size() == 1 && c.pending().entries == 0);
  CHECK(c.pending().needed.size() > 0 && c.token_missing(c.pending().needed) == 0);

  // Pages: pushed from b's record, in pages of 3; a duplicate changes
  // nothing; a later page first waits.
  for (int i = 0; i < 10; i++)
    a.increment("n", 1);
  converge::bytes cursor = b.context();
  CHECK(push_feed(a, b, cursor, 3) == 4); // 10 increments (b holds the post)
  CHECK(b.counter("n") == 10 && cursor == b.context());
  converge::feed_page none = a.changes_since(cursor, 3);
  CHECK(!none.changes && none.operations == 0 && !none.more && none.next == cursor);
  a.increment("n", 5);
  a.increment("n", 6);
  converge::feed_page p1 = a.changes_since(cursor, 1);
  converge::feed_page p2 = a.changes_since(p1.next, 1);
  CHECK(p1.more && !p2.more && p1.operations == 1 && p2.operations == 1);
  CHECK(b.apply_changes(*p2.changes) == CVG_DELIVERY_PENDING && b.counter("n") == 10);
  CHECK(b.apply_changes(*p1.changes) == CVG_DELIVERY_APPLIED && b.counter("n") == 21);
  CHECK(b.apply_changes(*p1.changes) == CVG_DELIVERY_DUPLICATE);

  // Peers, and a cursor older than the log: sync, then continue.
  converge::replica_id peer{};
  peer.fill(8);
  a.register_peer(peer);
  converge::feed_state f = a.feed_info();
  CHECK(f.peers.size() == 1 && f.peers[0].id == peer && f.floor >= 1 && f.last == 13);
  for (int i = 0; i < 1500; i++)
    a.lww_set("k" + std::to_string(i % 40), std::string(64, 'v'));
  f = a.feed_info();
  CHECK(f.floor > 14 && f.last == 1513 && f.size < (200 << 10));
  CHECK(status_of([&] { a.changes_since(cursor, 100); }) == CVG_STATUS_CURSOR_TOO_OLD);
  CHECK(is_success(a.sync_with(b)));
  cursor = b.context();
  a.acknowledge(peer, cursor);
  a.lww_set("k0", "new");
  CHECK(push_feed(a, b, cursor, 100) == 1);
  CHECK(converge::to_string(b.reg("k0")->value) == "new");
  a.acknowledge(peer, cursor);
  f = a.feed_info();
  CHECK(f.floor == f.last + 1 && f.peers[0].cursor == cursor);
  a.remove_peer(peer);
  CHECK(a.feed_info().peers.empty());

  // A full pending area (2 entries) refuses the third and changes nothing
  // (deltas of a fresh replica: they depend on nothing else).
  converge::engine g(base + "/dl-g", opts(10));
  converge::bytes d1 = g.increment("full", 1), d2 = g.increment("full", 1),
                  d3 = g.increment("full", 1), d4 = g.increment("full", 1);
  c.merge("full", d2);
  c.merge("full", d3);
  converge::bytes before = c.context();
  CHECK(status_of([&] { c.merge("full", d4); }) == CVG_STATUS_PENDING_FULL);
  CHECK(c.context() == before && c.pending().entries == 2);
  c.merge("full", d1);
  c.merge("full", d4);
  CHECK(c.counter("full") == 4 && c.pending().entries == 0);

  // Bad input: typed errors, nothing changed.
  converge::feed_page page = g.changes_since(converge::bytes(), 1);
  converge::bytes cut(page.changes->begin(), page.changes->end() - 1);
  before = b.context();
  CHECK(status_of([&] { b.apply_changes(cut); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { b.apply_changes(d1); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { a.changes_since("junk", 1); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { a.changes_since(cursor, 0); }) == CVG_STATUS_INVALID_ARGUMENT);
  CHECK(status_of([&] { a.acknowledge(peer, cursor); }) == CVG_STATUS_INVALID_ARGUMENT);
  CHECK(b.context() == before);
  converge::engine off(base + "/dl-off", converge::options().changes_feed(false));
  CHECK(status_of([&] { off.feed_info(); }) == CVG_STATUS_INVALID_ARGUMENT);
  CHECK(off.apply_changes(*page.changes) == CVG_DELIVERY_APPLIED);
}

// One session carried by handle(), `a` initiating (sync_with would hide
// the sessions, and with them what to acknowledge); then each side
// acknowledges what the other holds (both are members).
static void sync_ack(const converge::engine &a, const converge::engine &b) {
  converge::sync_start start = a.sync_initiate();
  converge::sync_session responder = b.sync_respond();
  // The messages in flight to `to`, one turn at a time.
  std::vector<converge::bytes> in_flight{start.first_message};
  converge::sync_session *to = &responder;
  while (!in_flight.empty()) {
    std::vector<converge::bytes> replies;
    for (const converge::bytes &m : in_flight)
      for (converge::bytes &r : to->handle(m))
        replies.push_back(std::move(r));
    in_flight = std::move(replies);
    to = to == &responder ? &start.session : &responder;
  }
  CHECK(start.session.acknowledged().has_value() && responder.acknowledged().has_value());
  a.acknowledge(b.id(), *start.session.acknowledged());
  b.acknowledge(a.id(), *responder.acknowledged());
}

// Deletes and the collection of tombstones: the cart, nothing to delete,
// observed deletes and batches, three members with one offline, a replica
// behind the horizon refused.
static void test_deletes(const std::string &base) {
  converge::engine phone(base + "/del-phone", opts(21));
  converge::engine laptop(base + "/del-laptop", opts(22).changes_feed(false));
  converge::engine third(base + "/del-third", opts(23));
  const converge::engine *all[3] = {&phone, &laptop, &third};
  for (const converge::engine *x : all)
    for (const converge::engine *y : all)
      if (x != y)
        x->register_peer(y->id());
  std::vector<converge::member> ms = laptop.membership();
  CHECK(ms.size() == 2 && ms[0].id == phone.id() && ms[1].id == third.id());

  laptop.merge("cart", phone.orset_add("cart", "tv"));
  std::optional<converge::bytes> del = phone.del("cart");
  CHECK(del.has_value() && phone.key_type("cart") == CVG_CRDT_NONE);
  CHECK(phone.members("cart").members.empty());
  converge::bytes radio = laptop.orset_add("cart", "radio");
  phone.merge("cart", radio);
  laptop.merge("cart", *del);
  laptop.merge("cart", *del);
  CHECK(first_member(phone, "cart") == "radio" && first_member(laptop, "cart") == "radio");
  CHECK(!phone.del("never").has_value());

  // Observed: only what the read held goes. Bad input changes nothing.
  phone.increment("c", 3);
  converge::bytes read = *phone.state("c");
  phone.increment("c", 4);
  CHECK(phone.del_observed("c", read).has_value() && phone.counter("c") == 4);
  converge::bytes before = *phone.state("c");
  CHECK(status_of([&] { phone.del_observed("c", "junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  phone.gset_add("g", "x");
  CHECK(status_of([&] { phone.del_observed("c", *phone.state("g")); }) == CVG_STATUS_WRONG_TYPE);
  CHECK(*phone.state("c") == before);
  converge::batch b;
  b.del("g").del("never");
  CHECK(status_of([&] { b.del_observed("g", "junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(b.size() == 2 && phone.write(b).size() == 1);
  {
    converge::key_iterator it = phone.stored_keys("g");
    CHECK(it.next()->first == "g" && !it.next().has_value());
    CHECK(!phone.keys("g").next().has_value());
  }

  // Collection waits for every member; the offline one is named. Three
  // tombstones: "c" (its value outlived the observed delete), "g", "cart".
  // A replica that collected and one that did not yet hold different
  // states for those keys (sessions between them end DIVERGED): collect on
  // every replica once each knows the others hold the deletes.
  sync_ack(phone, laptop);
  sync_ack(phone, third);
  sync_ack(laptop, third);
  for (const converge::engine *x : all) {
    CHECK(x->collect().collected == 3);
    CHECK(x->tombstones().waiting == 0);
  }
  CHECK(phone.sync_with(laptop).first == CVG_SYNC_EQUAL);
  CHECK(phone.sync_with(third).first == CVG_SYNC_EQUAL);
  phone.del("cart"); // the radio
  converge::collect_report r = phone.collect();
  CHECK(r.collected == 0 && r.waiting == 1 && r.waiting_on.size() == 2);
  sync_ack(phone, laptop);
  r = phone.tombstones();
  CHECK(r.waiting == 1 && r.waiting_on.size() == 1 && r.waiting_on[0].id == third.id() &&
        r.waiting_on[0].tombstones == 1);
  sync_ack(third, phone);
  r = phone.collect();
  CHECK(r.collected == 1 && r.purged == 1 && r.waiting == 0 && r.waiting_on.empty());
  CHECK(!r.horizon.empty() && !phone.state("cart").has_value());

  // A replica that missed the collected delete and holds data is refused.
  converge::engine late(base + "/del-late", opts(24));
  late.increment("mine", 1);
  CHECK(status_of([&] { late.sync_with(phone); }) == CVG_STATUS_BEHIND_HORIZON);
  CHECK(std::string(converge::status_name(CVG_STATUS_BEHIND_HORIZON)) ==
        "CVG_STATUS_BEHIND_HORIZON");
  converge::sync_start running = phone.sync_initiate();
  CHECK(!running.session.acknowledged().has_value());
}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <empty scratch directory>\n", argv[0]);
    return 2;
  }
  const std::string base = argv[1];
  CHECK(converge::version() == cvg_version());

  converge::engine a(base + "/a", opts(1));
  converge::engine b(base + "/b", opts(2));
  CHECK(a.id()[0] == 1 && b.id()[15] == 2);

  // Every type through the wrapper, shipped to the peer as deltas.
  b.merge("hits", a.increment("hits", 3));
  b.merge("pn", a.pn_add("pn", -2));
  b.merge("gs", a.gset_add("gs", "x"));
  b.merge("tp", a.twop_add("tp", "x"));
  b.merge("tp", a.twop_remove("tp", "x"));
  b.merge("cart", a.orset_add("cart", "milk"));
  a.merge("cart", offline_edit(b));
  b.merge("lww", a.lww_set("lww", "v1"));
  b.merge("fww", a.fww_set("fww", "f1"));
  CHECK(b.counter("hits") == 3 && b.counter("pn") == -2);
  CHECK(first_member(b, "cart") == "bread");
  CHECK(a.members("cart").members.size() == 2);
  CHECK(a.members("tp").members.empty());
  CHECK(b.reg("lww").has_value() && converge::to_string(b.reg("lww")->value) == "v1");
  CHECK(!b.reg("never").has_value());

  // Observed remove through the read context.
  converge::set_read r = a.members("cart");
  std::optional<converge::bytes> milk = a.orset_remove_observed("cart", "milk", r.context);
  CHECK(milk.has_value());
  b.merge("cart", *milk);
  // A remove of a non-member is no operation: no delta to ship.
  CHECK(!a.orset_remove("cart", "nothing").has_value());
  CHECK(!a.orset_remove_observed("cart", "bread", converge::bytes()).has_value());
  CHECK(b.members("cart").members.size() == 1);

  // MV siblings, resolved by a lambda; an exception from it propagates and
  // writes nothing.
  a.merge("mv", b.mv_write("mv", "pear", converge::bytes()));
  b.merge("mv", a.mv_write("mv", "apple", converge::bytes()));
  CHECK(a.mv("mv").siblings.size() == 2);
  bool threw = false;
  try {
    a.mv_resolve("mv", [](const std::vector<converge::sibling> &) -> converge::bytes {
      throw std::runtime_error("cannot merge");
    });
  } catch (const std::runtime_error &e) {
    threw = std::string(e.what()) == "cannot merge";
  }
  CHECK(threw && a.mv("mv").siblings.size() == 2);
  auto delta = a.mv_resolve("mv", [](const std::vector<converge::sibling> &s) {
    std::string joined;
    for (const auto &x : s)
      joined += (joined.empty() ? "" : "+") + converge::to_string(x.value);
    return converge::bytes(joined.begin(), joined.end());
  });
  CHECK(delta.has_value());
  b.merge("mv", *delta);
  CHECK(b.mv("mv").siblings.size() == 1);
  CHECK(converge::to_string(b.mv("mv").siblings[0].value) == "apple+pear");
  CHECK(!a.mv_resolve("mv", [](const std::vector<converge::sibling> &) {
           return converge::bytes();
         }).has_value());

  // Batches: deltas without per-delta allocations.
  converge::batch batch;
  batch.increment("hits", 1).pn_add("pn", 1).gset_add("gs", "y").orset_add("cart", "tea");
  batch.lww_set("lww", "v2").fww_set("fww", "f2").twop_add("tp2", "z");
  batch.mv_write("mv", "kiwi", a.mv("mv").context);
  batch.orset_remove_observed("cart", "zzz", converge::bytes()).orset_remove("cart", "zzz");
  CHECK(batch.size() == 10);
  converge::deltas ds = a.write(batch);
  // The two removes of a non-member removed nothing: no deltas.
  CHECK(ds.size() == 8 && ds[0].first == "hits");
  converge::batch remote;
  for (size_t i = 0; i < ds.size(); i++)
    remote.merge(converge::byte_view(ds[i].first), converge::byte_view(ds[i].second));
  b.apply(remote);
  CHECK(b.counter("hits") == 4);

  // Converged: equal roots, byte-equal states for every key.
  cvg_root_t ra = a.root(), rb = b.root();
  CHECK(ra.count == rb.count && std::memcmp(ra.hash, rb.hash, 16) == 0);
  CHECK(a.verify() && b.verify());
  {
    // Iterators keep the store open: scoped so they are gone before close.
    converge::key_iterator it = a.keys();
    size_t n = 0;
    while (auto k = it.next()) {
      CHECK(a.state(k->first) == b.state(k->first));
      CHECK(k->second == a.key_type(k->first));
      n++;
    }
    CHECK(n == ra.count);
    auto f = b.keys("f");
    CHECK(f.next()->first == "fww" && !f.next().has_value());
  }
  CHECK(a.version_vector() == b.version_vector());
  a.settle();
  a.flush();
  a.sync_wal();
  // Shipped to b too: with causal delivery, b would keep a's later deltas
  // (test_bulk) pending until it holds this operation.
  b.merge("big", a.increment("big", UINT64_MAX));
  CHECK(status_of([&] { a.counter("big"); }) == CVG_STATUS_OVERFLOW);
  CHECK(a.counter_wide("big").lo == UINT64_MAX && a.counter_wide("big").hi == 0);

  test_bulk(a, b);
  test_sync(base, opts(3), opts(4));
  test_tokens(base, opts(5), opts(6));
  test_delivery(base);
  test_deletes(base);

  // Errors carry their status; nothing changes.
  CHECK(status_of_wrong_type(a) == CVG_STATUS_WRONG_TYPE);
  CHECK(status_of([&] { a.merge("cart", "junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { a.counter("cart"); }) == CVG_STATUS_WRONG_TYPE);
  CHECK(status_of([&] { converge::options().durability(7); }) ==
        CVG_STATUS_INVALID_ARGUMENT);
  CHECK(status_of([&] { converge::engine again(base + "/a"); }) == CVG_STATUS_LOCKED);
  CHECK(a.key_type("nope") == CVG_CRDT_NONE && !a.state("nope").has_value());

  // Move-only handles: a moved-from engine is empty; close() reports.
  converge::engine moved(std::move(a));
  CHECK(moved.get() != nullptr && a.get() == nullptr);
  CHECK(status_of([&] { a.flush(); }) == CVG_STATUS_NULL_POINTER);
  moved.close();
  b.close();
  b.close(); // a second close is a no-op
  a.close(); // so is closing a moved-from engine
  std::printf("converge C++ wrapper tests: 6 passed, 0 failed\n");
  return 0;
}
